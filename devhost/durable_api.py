"""The Durable Functions HTTP API over the engine, and the durable client binding (how a
request's query and body are read: durable_requests.py).

The same API is served twice, as in Azure: publicly at `/runtime/webhooks/durabletask/`
(system or master key required) and on a loopback-only RPC port without keys, which is
the `rpcBaseUrl` the Python SDK's `DurableOrchestrationClient` talks to. Paths, status
codes and bodies follow the Durable Functions extension's HTTP API handler:

  POST   orchestrators/{functionName}[/{instanceId}]      202 | 200 (waited) | 400 | 409
  GET    instances/                                       200 (+ x-ms-continuation-token)
  DELETE instances/?createdTimeFrom=...                   200 | 400 | 404
  GET    instances/{id}                                   200 done | 202 busy | 404
  DELETE instances/{id}                                   200 | 404 | 412
  POST   instances/{id}/terminate|suspend|resume          202 | 404 | 410
  POST   instances/{id}/rewind                            202 | 404 | 412 | 501
  POST   instances/{id}/restart                           202 | 200 (waited) | 400 | 409
  POST   instances/{id}/raiseEvent/{eventName}            202 | 400 | 404 | 410
  *      entities/...                                     501 (entities are not supported)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devhost.durable_endpoints import DurableEndpoints
from devhost.durable_requests import (
    InvalidBody,
    WaitTimes,
    bool_query,
    datetime_query,
    json_body_text,
    page_size_query,
    statuses_query,
    wait_query,
)
from devhost.engine.interface import (
    TERMINAL_STATES,
    DurableEngineApi,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceStatus,
    json_value,
)
from devhost.problems import problem_response

log = logging.getLogger("devhost.durable")

CONTINUATION_HEADER = "x-ms-continuation-token"
ENTITIES_UNSUPPORTED = (
    "Durable entities are not supported by devhost, the local Functions host "
    "(see devhost/README.md); run the app in Azure to use them."
)


def _timestamp(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_payload(status: InstanceStatus) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status,
        "input": json_value(status.input),
        "customStatus": json_value(status.custom_status),
        "output": json_value(status.output),
        "createdTime": _timestamp(status.created_time),
        "lastUpdatedTime": _timestamp(status.last_updated_time),
    }
    if status.history is not None:
        payload["historyEvents"] = status.history
    return payload


def _error(status: int, message: str, exception: BaseException | None = None) -> web.Response:
    body: dict[str, Any] = {"Message": message}
    if exception is not None:
        body["ExceptionMessage"] = str(exception)
        body["ExceptionType"] = type(exception).__name__
    return web.json_response(body, status=status)


def _invalid_body(request: web.Request, error: InvalidBody) -> web.Response:
    # The extension's members too: the SDK client raises with `ExceptionMessage` on 400.
    return problem_response(
        400, "INVALID_JSON", "Invalid JSON content", str(error), request.path,
        Message="Invalid JSON content", ExceptionMessage=str(error),
    )


class DurableHttpApi:
    """aiohttp handlers of the durable API over the engine."""

    def __init__(
        self,
        engine: DurableEngineApi,
        endpoints: DurableEndpoints,
        *,
        orchestrator_exists: Callable[[str], bool],
    ) -> None:
        self.engine = engine
        self.endpoints = endpoints
        self._orchestrator_exists = orchestrator_exists

    async def dispatch(self, request: web.Request, path: str) -> web.StreamResponse:
        parts = [part for part in path.strip("/").split("/") if part]
        try:
            return await self._route(request, parts)
        except InvalidBody as error:
            return _invalid_body(request, error)
        except WaitTimes as error:  # checked before anything starts
            return _error(400, "One or more of the arguments submitted is incorrect", error)
        except InstanceNotFound:
            return web.Response(status=404)
        except Exception as error:
            log.exception("durable API request %s %s failed", request.method, request.path)
            return _error(500, "Something went wrong while processing your request", error)

    async def _route(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        method = request.method
        if parts and parts[0].lower() == "entities":
            log.error("durable entities are not supported by devhost: %s %s refused",
                      method, "/".join(parts[:2]))
            return _error(501, ENTITIES_UNSUPPORTED)
        if parts and parts[0].lower() == "orchestrators" and len(parts) in (2, 3):
            if method != "POST":
                return web.Response(status=404)
            return await self._start(request, parts[1], parts[2] if len(parts) == 3 else None)
        if not parts or parts[0].lower() != "instances" or len(parts) > 4:
            return web.Response(status=404)
        if len(parts) == 1:
            if method == "GET":
                return await self._list(request)
            if method == "DELETE":
                return await self._purge_many(request)
            return web.Response(status=404)
        instance_id = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return await self._status(request, instance_id)
            if method == "DELETE":
                return await self._purge(instance_id)
            return web.Response(status=404)
        if method != "POST":
            return web.Response(status=404)
        operation = parts[2].lower()
        if operation == "raiseevent" and len(parts) == 4:
            return await self._raise_event(request, instance_id, parts[3])
        if len(parts) != 3:
            return web.Response(status=404)
        if operation in ("terminate", "suspend", "resume"):
            return await self._change_state(request, instance_id, operation)
        if operation == "rewind":
            return await self._rewind(request, instance_id)
        if operation == "restart":
            return await self._restart(request, instance_id)
        return web.Response(status=404)

    def check_status_response(self, instance_id: str) -> web.Response:
        urls = self.endpoints.management_urls(instance_id)
        return web.json_response(
            urls,
            status=202,
            headers={"Location": urls["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def _start(
        self, request: web.Request, function_name: str, instance_id: str | None
    ) -> web.StreamResponse:
        input_json = await json_body_text(request)
        wait = wait_query(request.query)
        if not self._orchestrator_exists(function_name):
            return _error(
                400,
                "One or more of the arguments submitted is incorrect",
                ValueError(
                    f"The function '{function_name}' doesn't exist, is disabled, or is not "
                    "an orchestrator function. Additional info: no orchestrator function "
                    f"named '{function_name}' is loaded by this host."
                ),
            )
        try:
            instance_id = await self.engine.start_instance(
                function_name, instance_id or uuid.uuid4().hex, input_json
            )
        except InstanceAlreadyExists as error:
            return _error(409, str(error) or "An instance with this ID already exists.")
        except ValueError as error:  # an instance id Azure Storage cannot hold
            return _error(400, "One or more of the arguments submitted is incorrect", error)
        return await self._wait_or_check_status(request, instance_id, wait)

    async def _wait_or_check_status(
        self, request: web.Request, instance_id: str, wait: tuple[float, float] | None
    ) -> web.StreamResponse:
        """With `timeout` and `pollingInterval` (`wait`): the output (200) or the terminal
        status once the instance ends within the timeout; otherwise (and without them) the
        check-status answer (202)."""
        if wait is None:
            return self.check_status_response(instance_id)
        timeout, interval = wait
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.engine.get_instance(instance_id)
            if status is not None and status.runtime_status in TERMINAL_STATES:
                if status.runtime_status == "Completed":
                    return web.json_response(json_value(status.output), status=200)
                return await self._status(request, instance_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return self.check_status_response(instance_id)
            await asyncio.sleep(min(interval, remaining))

    async def _status(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        query = request.query
        status = await self.engine.get_instance(
            instance_id,
            show_history=bool_query(query, "showHistory", False),
            show_history_output=bool_query(query, "showHistoryOutput", False),
            show_input=bool_query(query, "showInput", True),
        )
        if status is None:
            return web.Response(status=404)
        headers = {}
        if status.runtime_status in TERMINAL_STATES:
            code = 200
            if status.runtime_status == "Failed" and bool_query(
                query, "returnInternalServerErrorOnFailure", False
            ):
                code = 500
        else:
            code = 202
            headers = {"Location": str(request.url), "Retry-After": "5"}
        return web.json_response(status_payload(status), status=code, headers=headers)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        statuses, token = await self.engine.query_instances(
            runtime_status=statuses_query(query),
            created_from=datetime_query(query, "createdTimeFrom"),
            created_to=datetime_query(query, "createdTimeTo"),
            instance_id_prefix=query.get("instanceIdPrefix"),
            top=page_size_query(query),
            continuation_token=request.headers.get(CONTINUATION_HEADER) or None,
        )
        payload = [status_payload(status) for status in statuses]
        if not bool_query(query, "showInput", True):
            for item in payload:
                item["input"] = None
        headers = {CONTINUATION_HEADER: token} if token else {}
        return web.json_response(payload, status=200, headers=headers)

    async def _purge(self, instance_id: str) -> web.StreamResponse:
        status = await self.engine.get_instance(instance_id)
        if status is None:
            return web.Response(status=404)
        if status.runtime_status not in TERMINAL_STATES:
            return web.json_response(
                "Only orchestrations in a terminal state can be purged, but the orchestration "
                f"with instance ID {instance_id} has status {status.runtime_status}",
                status=412,
            )
        deleted = await self.engine.purge(instance_id)
        return web.json_response({"instancesDeleted": deleted}, status=200)

    async def _purge_many(self, request: web.Request) -> web.StreamResponse:
        created_from = datetime_query(request.query, "createdTimeFrom")
        if created_from is None:
            return web.json_response(
                "Please provide value for 'createdTimeFrom' parameter.", status=400
            )
        deleted = await self.engine.purge_many(
            created_from=created_from,
            created_to=datetime_query(request.query, "createdTimeTo") or datetime.now(UTC),
            runtime_status=statuses_query(request.query),
        )
        if not deleted:
            return web.Response(status=404)
        return web.json_response({"instancesDeleted": deleted}, status=200)

    async def _refuse_unless_running(self, instance_id: str) -> web.Response | None:
        """404 for an unknown instance, 410 for one that ended; None when it still runs."""
        status = await self.engine.get_instance(instance_id, show_input=False)
        if status is None:
            return web.Response(status=404)
        if status.runtime_status in TERMINAL_STATES:
            return web.Response(status=410)
        return None

    async def _change_state(
        self, request: web.Request, instance_id: str, operation: str
    ) -> web.StreamResponse:
        refused = await self._refuse_unless_running(instance_id)
        if refused is not None:
            return refused
        reason = request.query.get("reason")
        await getattr(self.engine, operation)(instance_id, reason)
        return web.Response(status=202)

    async def _rewind(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        status = await self.engine.get_instance(instance_id, show_input=False)
        if status is None:
            return web.json_response(
                f'No orchestration with instance ID "{instance_id}" found.', status=404
            )
        if status.runtime_status != "Failed":
            return web.json_response(
                f"This orchestration has status {status.runtime_status}, but only "
                'orchestrations in the "Failed" state can be rewound.',
                status=412,
            )
        try:
            await self.engine.rewind(instance_id, request.query.get("reason"))
        except NotImplementedError as error:
            return _error(501, "Rewind is not supported by the underlying storage provider.", error)
        return web.Response(status=202)

    async def _restart(self, request: web.Request, instance_id: str) -> web.StreamResponse:
        wait = wait_query(request.query)
        status = await self.engine.get_instance(instance_id, show_input=True)
        if status is None:
            return _error(
                400,
                "InstanceId does not match a valid orchestration instance.",
                ValueError(f"No instance with ID '{instance_id}' found."),
            )
        new_id = (
            instance_id
            if not bool_query(request.query, "restartWithNewInstanceId", True)
            else uuid.uuid4().hex
        )
        try:
            new_id = await self.engine.start_instance(status.name, new_id, status.input)
        except InstanceAlreadyExists as error:
            return _error(
                409, "A non-terminal instance with this instance ID already exists.", error
            )
        return await self._wait_or_check_status(request, new_id, wait)

    async def _raise_event(
        self, request: web.Request, instance_id: str, event_name: str
    ) -> web.StreamResponse:
        refused = await self._refuse_unless_running(instance_id)
        if refused is not None:
            return refused
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        data_json = await json_body_text(request)
        await self.engine.raise_event(instance_id, event_name, data_json)
        return web.Response(status=202)
