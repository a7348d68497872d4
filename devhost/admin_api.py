"""The Functions host's admin API, the parts a developer uses locally.

    GET      /admin/host/status         master key  200 {id, state, version, ...}
    GET|POST /admin/host/ping           anonymous   200, empty body
    POST     /admin/functions/{name}    master key  202 | 400 | 404, body {"input": ...}

As the host's HostController and FunctionsController: the status body has the host's
members (`state` is `Running` once every listener runs, `Initialized` before); ping answers
whenever the port listens; a run-now request is accepted (202) before the function runs,
and its outcome is the execution's log line. A timer function runs with a `TimerRequest`
that is not past due and carries its schedule status, as the real host builds it for a
manual run (the schedule's next occurrence is unchanged, and the timer's singleton lock is
not taken). Only timer functions can be run this way here; a disabled one runs too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devhost.keys import HostKeys
from devhost.problems import problem_response, unauthorized

HOST_VERSION = "4.0.0-devhost"  # the real host's major version, marked as this host
PROCESS_STARTED = time.time()


@dataclass(frozen=True)
class AdminFunctions:
    """What the admin API may run: timer function names (as written, for lookup) and the
    callback that runs one now with its `input` (the value of the body's `input`)."""

    timer_names: dict[str, str]  # lower-case name -> name
    all_names: frozenset[str]  # lower-case names of every function of the app
    run_timer_now: Callable[[str, Any], Coroutine[Any, Any, None]]


class AdminApi:
    """aiohttp handlers of `/admin/...`."""

    def __init__(self, *, keys: HostKeys, host_id: str, ready: asyncio.Event) -> None:
        self._keys = keys
        self._host_id = host_id
        self._ready = ready
        self._instance_id = uuid.uuid4().hex
        self._runs: set[asyncio.Task[None]] = set()
        self.functions: AdminFunctions | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/admin/host/status", self._status)
        app.router.add_route("GET", "/admin/host/ping", self._ping)
        app.router.add_route("POST", "/admin/host/ping", self._ping)
        app.router.add_route("POST", "/admin/functions/{name}", self._run_function)

    async def close(self) -> None:
        for task in self._runs:
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)

    async def _status(self, request: web.Request) -> web.Response:
        if not self._keys.allows("admin", request.query, request.headers):
            return unauthorized(request)
        return web.json_response({
            "id": self._host_id,
            "state": "Running" if self._ready.is_set() else "Initialized",
            "version": HOST_VERSION,
            "versionDetails": f"{HOST_VERSION} (devhost, the project's local Functions host)",
            "platformVersion": "",
            "instanceId": self._instance_id,
            "computerName": socket.gethostname(),
            "processUptime": round((time.time() - PROCESS_STARTED) * 1000),
            "functionAppContentEditingState": "Unknown",
        })

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers={"Cache-Control": "no-store, no-cache"})

    async def _run_function(self, request: web.Request) -> web.Response:
        if not self._keys.allows("admin", request.query, request.headers):
            return unauthorized(request)
        if not self._ready.is_set() or self.functions is None:
            return web.Response(status=503)
        try:
            body = json.loads(await request.text() or "null")
        except ValueError as error:
            return problem_response(400, "INVALID_JSON", "Invalid JSON content",
                                    f"the body is not JSON: {error}", request.path)
        if not isinstance(body, dict):
            return problem_response(
                400, "INVOCATION_REQUIRED", "Invocation body required",
                'post a JSON object such as {"input": ""} (Content-Type: application/json)',
                request.path,
            )
        wanted = request.match_info["name"].lower()
        if wanted not in self.functions.all_names:
            return web.Response(status=404)
        name = self.functions.timer_names.get(wanted)
        if name is None:
            return problem_response(
                400, "NOT_A_TIMER_FUNCTION", "Only timer functions run this way here",
                f"function {request.match_info['name']!r} is not a timer function: the local "
                "host runs only timer functions through the admin API; call the function "
                "through its own trigger", request.path,
            )
        task = asyncio.create_task(self.functions.run_timer_now(name, body.get("input")))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return web.Response(status=202)

