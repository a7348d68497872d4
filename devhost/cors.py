"""CORS for the host's HTTP front, from `Host.CORS` of local.settings.json.

As `func start` sets it up (ASP.NET Core's CORS middleware with the listed origins, any
method and any header): a request whose `Origin` is allowed gets
`Access-Control-Allow-Origin` (`*` when any origin is allowed, else the origin itself,
with `Access-Control-Allow-Credentials: true` under `Host.CORSCredentials`); a preflight
(`OPTIONS` with `Access-Control-Request-Method`) is answered 204 by the host itself, with
the requested method and headers allowed. Other origins get no CORS headers, which a
browser reads as a refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from devhost.host_config import CorsPolicy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _allow_origin_headers(policy: CorsPolicy, origin: str) -> dict[str, str]:
    if policy.allow_credentials:
        return {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
    if "*" in policy.origins:
        return {"Access-Control-Allow-Origin": "*"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def cors_middleware(policy: CorsPolicy) -> Middleware:
    @web.middleware
    async def apply_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and policy.allows(origin)
        wanted_method = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and origin is not None and wanted_method:
            headers: dict[str, str] = {}
            if allowed:
                headers = {**_allow_origin_headers(policy, origin),
                           "Access-Control-Allow-Methods": wanted_method}
                wanted_headers = request.headers.get("Access-Control-Request-Headers")
                if wanted_headers:
                    headers["Access-Control-Allow-Headers"] = wanted_headers
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        if allowed and origin is not None and not response.prepared:
            response.headers.update(_allow_origin_headers(policy, origin))
        return response

    return apply_cors
