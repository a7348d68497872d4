"""The public HTTP front of the host: HTTP triggers, the durable API and the admin API.

HTTP-triggered functions get an `azure.functions.HttpRequest` (method, full URL, headers,
query, route parameters, body) and answer with an `HttpResponse` (returned, or set on an
`http` output binding) or a string. Unmatched routes and methods give 404 and an unhandled
exception 500 with an empty body, as in Azure; a missing or wrong key gives 401 with a
problem+json body (Azure's is empty). A disabled function's route answers 404, as in Azure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devhost.admin_api import AdminApi
from devhost.app_loading import HTTP_OUTPUT, FunctionSpec
from devhost.cors import cors_middleware
from devhost.durable_api import DurableHttpApi
from devhost.durable_endpoints import WEBHOOK_PATH
from devhost.host_config import CorsPolicy
from devhost.keys import HostKeys
from devhost.problems import unauthorized
from devhost.routes import RouteTemplate

log = logging.getLogger("devhost.http")

STARTUP_WAIT_SECONDS = 60
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class HttpRoute:
    spec: FunctionSpec
    template: RouteTemplate
    methods: tuple[str, ...]
    auth_level: str

    @classmethod
    def from_spec(cls, spec: FunctionSpec, default_auth_level: str = "function") -> HttpRoute:
        trigger = spec.trigger
        methods = trigger.get("methods") or ALL_METHODS
        return cls(
            spec=spec,
            template=RouteTemplate.parse(trigger.get("route") or spec.name),
            methods=tuple(str(method).upper() for method in methods),
            auth_level=str(trigger.get("authLevel") or default_auth_level).lower(),
        )


def route_table(functions: list[FunctionSpec]) -> list[HttpRoute]:
    """HTTP routes, most specific first (literal segments win over parameters)."""
    routes = [HttpRoute.from_spec(spec) for spec in functions if spec.trigger_type == "httpTrigger"]
    return sorted(routes, key=lambda route: route.template.precedence)


def _http_request(
    request: web.Request, body: bytes, route_params: dict[str, str]
) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers={name.lower(): value for name, value in request.headers.items()},
        params={name: ",".join(request.query.getall(name)) for name in request.query},
        route_params=route_params,
        body=body,
    )


def _web_response(result: Any, function_name: str) -> web.Response:
    if isinstance(result, func.HttpResponse):
        # A multidict keeps repeated headers such as several Set-Cookie lines.
        headers = CIMultiDict(result.headers.items())
        if "content-type" not in headers:
            mimetype = result.mimetype or "text/plain"
            if mimetype.startswith("text/"):
                mimetype = f"{mimetype}; charset={result.charset}"
            headers["Content-Type"] = mimetype
        return web.Response(
            status=result.status_code, body=result.get_body() or b"", headers=headers
        )
    if isinstance(result, str):
        return web.Response(status=200, text=result, content_type="text/plain", charset="utf-8")
    if result is None:
        return web.Response(status=204)
    raise TypeError(
        f"function {function_name!r} returned {type(result).__name__}; an HTTP function "
        "must return func.HttpResponse or str"
    )


class HttpFront:
    """Builds the aiohttp application that serves the app's HTTP side."""

    def __init__(
        self,
        *,
        functions: list[FunctionSpec],
        route_prefix: str,
        keys: HostKeys,
        invoke: Callable[..., Awaitable[tuple[Any, dict[str, Any]]]],
        durable_api: DurableHttpApi | None,
        host_id: str = "devhost",
        disabled: frozenset[str] = frozenset(),
        cors: CorsPolicy | None = None,
    ) -> None:
        self.routes = route_table(functions)
        self.route_prefix = route_prefix.strip("/")
        self.keys = keys
        self._invoke = invoke
        self.durable_api = durable_api
        self._disabled = {name.lower() for name in disabled}
        self._cors = cors
        # Set once the engine and timers run: the port must listen earlier (bindings carry
        # it), but no function may run against a half-started host.
        self.ready = asyncio.Event()
        self.admin = AdminApi(keys=keys, host_id=host_id, ready=self.ready)

    async def wait_until_ready(self) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=STARTUP_WAIT_SECONDS)
        except TimeoutError:
            return False
        return True

    def application(self) -> web.Application:
        middlewares = [cors_middleware(self._cors)] if self._cors is not None else []
        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=middlewares)
        self.admin.add_routes(app)
        # [\s\S], not ".": a path may hold an encoded line break, and it is the routing's
        # to refuse, not aiohttp's (whose 404 is text/plain).
        app.router.add_route("*", WEBHOOK_PATH + r"{tail:(/[\s\S]*)?}", self._durable_webhook)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._function_request)
        return app

    def function_path(self, route: HttpRoute) -> str:
        template = route.template.template.strip("/")
        return "/" + "/".join(part for part in (self.route_prefix, template) if part)

    async def _durable_webhook(self, request: web.Request) -> web.StreamResponse:
        if self.durable_api is None:
            return web.Response(status=404)
        if not self.keys.allows_durable_api(request.query, request.headers):
            return unauthorized(request)
        if not await self.wait_until_ready():
            return web.Response(status=503)
        return await self.durable_api.dispatch(request, request.match_info.get("tail", ""))

    def _match(self, path: str) -> tuple[list[tuple[HttpRoute, dict[str, str]]], str | None]:
        parts = [part for part in path.split("/") if part]
        prefix = [part for part in self.route_prefix.split("/") if part]
        if [part.lower() for part in parts[: len(prefix)]] != [part.lower() for part in prefix]:
            return [], None
        rest = "/".join(parts[len(prefix) :])
        matches = []
        for route in self.routes:
            values = route.template.match(rest)
            if values is not None:
                matches.append((route, values))
        return matches, rest

    async def _function_request(self, request: web.Request) -> web.StreamResponse:
        matches, _ = self._match(request.path)
        matches = [(route, values) for route, values in matches
                   if route.spec.name.lower() not in self._disabled]
        allowed = [(route, values) for route, values in matches if request.method in route.methods]
        if request.method == "HEAD" and not allowed:
            allowed = [(route, values) for route, values in matches if "GET" in route.methods]
        if not allowed:
            return web.Response(status=404)
        route, route_params = allowed[0]
        if not self.keys.allows(route.auth_level, request.query, request.headers):
            return unauthorized(request)
        if not await self.wait_until_ready():
            return web.Response(status=503)
        body = await request.read()
        spec = route.spec

        def convert(result: Any, outputs: dict[str, Any]) -> web.Response:
            for binding in spec.bindings_of_type(HTTP_OUTPUT):
                if binding["name"] != "$return" and binding["name"] in outputs:
                    result = outputs[binding["name"]].get()
            return _web_response(result, spec.name)

        try:
            response: web.StreamResponse
            response, _ = await self._invoke(
                spec, _http_request(request, body, route_params), convert
            )
        except Exception:  # logged with its traceback by the invoker
            return web.Response(status=500)
        return response
