"""With Azure Storage down, every HTTP endpoint of the whole app on the local host answers
problem+json with a code: 503 with Retry-After, no traceback, no connection string, no
key. With storage back, the same requests are answered again.

Azurite is this module's own (stopped and started again on the same ports and data), not
the session's, which other tests share.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from devtools import services
from orchestrators.openapi import OPENAPI_DOCUMENT
from shared.problems import PROBLEM_JSON
from tests.chaos.whole_app import WholeApp
from tests.sync.sources import create_asset_source

DOCUMENT = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))


def example(path: str, method: str) -> Any:
    return DOCUMENT["paths"][path][method]["requestBody"]["content"]["application/json"][
        "example"]


LOAD = "/api/bulk-loads/seed-example-1"
INSTANCE = "/api/batch-jobs/contacts/try-1"
# (method, documented path) -> (the path asked, request arguments): every operation of
# orchestrators/openapi.json, with a valid request.
REQUESTS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("get", "/api/health"): ("/api/health", {}),
    ("get", "/api/openapi.json"): ("/api/openapi.json", {}),
    ("get", "/api/console"): ("/api/console", {}),
    ("get", "/api/console/assets/{name}"): ("/api/console/assets/console.js", {}),
    ("get", "/api/console/inventory"): ("/api/console/inventory", {}),
    ("get", "/api/sync/{job}"): ("/api/sync/asset-changes", {}),
    ("post", "/api/sync/{job}/run"): ("/api/sync/asset-changes/run", {}),
    ("get", "/api/bulk-loads"): ("/api/bulk-loads", {}),
    ("post", "/api/bulk-loads"): ("/api/bulk-loads",
                                  {"json": example("/api/bulk-loads", "post")}),
    ("get", "/api/bulk-loads/{loadId}"): (LOAD, {}),
    ("get", "/api/bulk-loads/{loadId}/results"): (f"{LOAD}/results", {}),
    ("get", "/api/bulk-loads/{loadId}/failures"): (f"{LOAD}/failures", {}),
    ("post", "/api/bulk-loads/{loadId}/retry-failures"): (f"{LOAD}/retry-failures", {}),
    ("post", "/api/bulk-loads/{loadId}/cancel"): (f"{LOAD}/cancel",
                                                  {"json": {"reason": "wrong export file"}}),
    ("post", "/api/batch-jobs/{job}"): ("/api/batch-jobs/contacts", {
        "params": {"instanceId": "try-1"},
        "json": example("/api/batch-jobs/{job}", "post")}),
    ("get", "/api/batch-jobs/{job}"): ("/api/batch-jobs/contacts", {}),
    ("get", "/api/batch-jobs/{job}/{instanceId}"): (INSTANCE, {}),
    ("get", "/api/batch-jobs/{job}/{instanceId}/failures"): (f"{INSTANCE}/failures", {}),
    ("post", "/api/events"): ("/api/events", {"json": example("/api/events", "post")}),
    ("get", "/api/events"): ("/api/events", {}),
    ("post", "/api/events/drain"): ("/api/events/drain", {}),
    ("get", "/api/events/dead-letters"): ("/api/events/dead-letters", {}),
    ("post", "/api/events/dead-letters/replay"): ("/api/events/dead-letters/replay",
                                                  {"json": {"object": "Asset"}}),
}
# Served from the app's files, not from storage: answered whether storage is up or not.
WITHOUT_STORAGE = {("get", "/api/openapi.json"), ("get", "/api/console"),
                   ("get", "/api/console/assets/{name}"), ("get", "/api/console/inventory")}
# Its job is to report storage: 503 with its own JSON report (documented), not a problem.
HEALTH = ("get", "/api/health")
# Every endpoint classifies its failures one way (orchestrators/http.py answers_failures):
# the dependency is named, and the answer says which operation failed.
UNAVAILABLE_CODES = {"STORAGE_UNAVAILABLE", "DURABLE_UNAVAILABLE"}


@dataclass
class AppOnStorage:
    app: WholeApp
    storage: services.Azurite

    def stop_storage(self) -> None:
        self.storage.stop(grace_seconds=1.0)

    def start_storage(self) -> None:
        # The same ports and data: the host's settings still name them.
        self.storage = services.start_azurite(
            self.storage.workdir, blob_port=self.storage.blob_port,
            queue_port=self.storage.queue_port, table_port=self.storage.table_port,
            log_file=self.storage.workdir.parent / "azurite.log")


@pytest.fixture(scope="module")
def app_on_storage(tmp_path_factory, sfsim_server) -> Iterator[AppOnStorage]:
    workdir = tmp_path_factory.mktemp("http-failures")
    storage = services.start_azurite(workdir / "azurite", log_file=workdir / "azurite.log")
    source = create_asset_source(
        services.sqlite_odbc_connection_string(workdir / "source.db"), "sqlite")
    running = AppOnStorage(WholeApp.create(workdir, storage.connection_string, sfsim_server,
                                           source), storage)
    running.app.start()
    try:
        yield running
    finally:
        running.app.stop()
        running.storage.stop(grace_seconds=1.0)


def ask_every_endpoint(app: WholeApp) -> dict[tuple[str, str], requests.Response]:
    def ask(operation: tuple[str, str]) -> requests.Response:
        path, arguments = REQUESTS[operation]
        return app.request(operation[0].upper(), path, timeout=120, **arguments)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip(REQUESTS, pool.map(ask, REQUESTS), strict=True))


def test_every_operation_of_the_document_is_asked():
    documented = {(method, path) for path, item in DOCUMENT["paths"].items()
                  for method in item if method in {"get", "post", "put", "delete", "patch"}}

    assert set(REQUESTS) == documented


def test_with_storage_down_every_endpoint_answers_a_problem_then_works_again(
        app_on_storage: AppOnStorage):
    app, storage = app_on_storage.app, app_on_storage.storage
    leaks = ["Traceback", "AccountKey", services.AZURITE_KEY, app.running_host.function_key,
             app.running_host.master_key, f":{storage.table_port}", f":{storage.blob_port}",
             "/runtime/webhooks", "/durabletask"]

    app_on_storage.stop_storage()
    down = ask_every_endpoint(app)
    app_on_storage.start_storage()
    back = ask_every_endpoint(app)

    wrong = {}
    for operation, answer in down.items():
        described = (f"{answer.status_code} {answer.headers.get('Content-Type')} "
                     f"{answer.text[:300]}")
        if operation in WITHOUT_STORAGE:
            if answer.status_code != 200:
                wrong[operation] = described
            continue
        if operation == HEALTH:
            if answer.status_code != 503 or answer.json().get("status") != "degraded":
                wrong[operation] = described
            continue
        problem = answer.json() if answer.headers.get("Content-Type", "").startswith(
            PROBLEM_JSON) else {}
        if (answer.status_code != 503 or problem.get("code") not in UNAVAILABLE_CODES
                or problem.get("status") != 503 or not answer.headers.get("Retry-After")
                or not problem.get("operation")
                or any(leak in answer.text for leak in leaks)):
            wrong[operation] = described
    assert wrong == {}, "answers with storage down"

    assert {operation: f"{answer.status_code} {answer.text[:300]}"
            for operation, answer in back.items() if answer.status_code >= 500} == {}, \
        "answers once storage is back"
    assert back[HEALTH].status_code == 200
    assert back[("post", "/api/events")].status_code == 202
    assert back[("get", "/api/events")].status_code == 200
