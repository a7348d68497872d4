"""shared.durable: what the app reads of statuses; a status read answered with the
backend's error document raises, through the SDK's own client against a server answering
as the Durable HTTP API does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from azure.durable_functions import DurableOrchestrationClient, OrchestrationRuntimeStatus
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.utils import http_utils

from devhost.durable_endpoints import DurableEndpoints
from devhost.host import close_durable_client_session
from shared.dependency_failures import DURABLE_UNAVAILABLE, classify_failure
from shared.durable import (
    DurableBackendError,
    instance_id_of,
    one_line,
    read_status,
    runtime_state_of,
)


def test_a_status_the_client_answered_gives_its_id_and_runtime_state():
    status = DurableOrchestrationStatus(
        name="bulk_load", instanceId="load-1", runtimeStatus=OrchestrationRuntimeStatus.Running)
    assert instance_id_of(status) == "load-1"
    assert runtime_state_of(status) == "Running"


def test_a_status_without_id_or_runtime_state_is_refused_by_name():
    empty = DurableOrchestrationStatus()
    with pytest.raises(ValueError, match="instance id"):
        instance_id_of(empty)
    with pytest.raises(ValueError, match="no runtime status"):
        runtime_state_of(empty)


# How the Durable HTTP API answers a status read (devhost/durable_api.py answers the same).
STATUS_ANSWERS: dict[str, tuple[int, Any]] = {
    "running": (202, {"name": "sync_run", "instanceId": "running", "runtimeStatus": "Running",
                      "createdTime": "2026-12-01T10:00:00Z",
                      "lastUpdatedTime": "2026-12-01T10:00:01Z"}),
    # A Failed instance is answered 500 too (returnInternalServerErrorOnFailure).
    "failed": (500, {"name": "sync_run", "instanceId": "failed", "runtimeStatus": "Failed",
                     "createdTime": "2026-12-01T10:00:00Z",
                     "lastUpdatedTime": "2026-12-01T10:00:01Z"}),
    "unknown": (404, None),
    # The backend failed (its storage is down): the extension's error document.
    "backend-down": (500, {"Message": "Something went wrong while processing your request",
                           "ExceptionMessage": "Connection refused",
                           "ExceptionType": "RequestFailedException"}),
}


async def status_backend() -> tuple[web.AppRunner, DurableOrchestrationClient]:
    async def status(request: web.Request) -> web.Response:
        code, body = STATUS_ANSWERS[request.match_info["instance_id"]]
        if body is None:
            return web.Response(status=code)
        return web.json_response(body, status=code)

    app = web.Application()
    app.router.add_get("/durabletask/instances/{instance_id}", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    endpoints = DurableEndpoints(base_url=f"http://127.0.0.1:{port}/runtime/webhooks/durabletask",
                                 rpc_base_url=f"http://127.0.0.1:{port}/durabletask/",
                                 hub_name="Hub", system_key="system-key")
    return runner, DurableOrchestrationClient(endpoints.client_binding_json({}))


def read_statuses(instance_ids: list[str]) -> list[Any]:
    """read_status of each id through the SDK's client against the answers above: the
    status, or the exception raised."""
    async def read_all() -> list[Any]:
        runner, client = await status_backend()
        results: list[Any] = []
        try:
            for instance_id in instance_ids:
                try:
                    results.append(await read_status(client, instance_id))
                except Exception as error:  # what the HTTP function would see
                    results.append(error)
        finally:
            await close_durable_client_session()
            await runner.cleanup()
        return results

    return asyncio.run(read_all())


def test_a_status_read_answered_with_the_backends_error_document_raises(monkeypatch):
    # The SDK keeps one aiohttp session a process, bound to the loop that made it.
    monkeypatch.setattr(http_utils, "_client_session", None)

    [down] = read_statuses(["backend-down"])

    assert isinstance(down, DurableBackendError)
    assert classify_failure(down) is DURABLE_UNAVAILABLE


def test_status_reads_of_instances_and_of_an_unknown_one_are_answered(monkeypatch):
    monkeypatch.setattr(http_utils, "_client_session", None)

    running, failed, unknown = read_statuses(["running", "failed", "unknown"])

    assert runtime_state_of(running) == "Running"
    assert runtime_state_of(failed) == "Failed"  # answered 500, but a status
    assert isinstance(unknown, DurableOrchestrationStatus) and not unknown
    assert unknown.runtime_status is None


def test_the_app_reads_statuses_only_through_read_status():
    root = Path(__file__).resolve().parents[2]
    direct = [f"{path.relative_to(root)}:{number}"
              for folder in ("orchestrators", "activities", "shared")
              for path in sorted((root / folder).rglob("*.py")) if path.name != "durable.py"
              for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if ".get_status(" in line]

    assert direct == []


def test_an_activity_failure_is_read_as_its_exception_line_without_the_stack():
    failure = ("Activity function 'sync_pages' failed:  Result: Failure\n"
               "Exception: SyncRunError: the source refused the query\n"
               "Stack:   File \"/app/activities/sync.py\", line 12, in sync_pages\n")
    assert one_line(failure) == "SyncRunError: the source refused the query"
    assert one_line("Activity function 'x' failed: boom\n  at line 3") == "boom"
    assert one_line("\n\n") == ""


def test_a_long_failure_line_is_cut_at_300_characters_with_an_ellipsis():
    line = one_line("x" * 1000)
    assert len(line) == 300 and line.endswith("…")
