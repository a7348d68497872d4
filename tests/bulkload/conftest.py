"""Fixtures of the bulk-load tests: a simulator org, Azurite blobs, the app on devhost."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devhost.testing import RunningHost, start_host
from sfsim.testing import SimulatorHandle
from shared.bulkload.job_intents import JobIntents
from shared.bulkload.store import LoadStore
from shared.salesforce import SalesforceClient, SalesforceCredentials

APP = Path(__file__).parent / "host_app"


@pytest.fixture
def sf_client(sfsim: SimulatorHandle) -> Iterator[SalesforceClient]:
    credentials = SalesforceCredentials(login_url=sfsim.login_url, client_id=sfsim.client_id,
                                        client_secret=sfsim.client_secret)
    with SalesforceClient(credentials, max_retries=2, backoff=0.01) as client:
        yield client


@pytest.fixture
def store(azurite) -> LoadStore:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    loads = LoadStore.for_load(service, "bulk-loads-tests", f"t-{uuid.uuid4().hex[:12]}/run")
    loads.ensure_container()
    return loads


@pytest.fixture
def job_intents(azurite) -> Iterator[JobIntents]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table(f"J{uuid.uuid4().hex[:12]}")
    yield JobIntents(table)
    service.delete_table(table.table_name)


@dataclass
class BulkLoadHost:
    app_dir: Path
    env: dict[str, str]
    host: RunningHost
    hosts: list[RunningHost] = field(default_factory=list)

    def post(self, body: Any, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(self.host.url("/api/bulk-loads"), data=data,
                             params={"code": self.host.function_key},
                             headers={"Content-Type": "application/json"}, timeout=60)

    def get(self, url_or_path: str, **params: str) -> requests.Response:
        url = url_or_path if url_or_path.startswith("http") else self.host.url(url_or_path)
        return requests.get(url, params={"code": self.host.function_key, **params}, timeout=60)

    def durable_status(self, load_id: str, **params: str) -> dict:
        response = requests.get(
            self.host.url(f"/runtime/webhooks/durabletask/instances/{load_id}"),
            params={"code": self.host.master_key, **params}, timeout=60)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def durable_status_code(self, load_id: str) -> int:
        return requests.get(
            self.host.url(f"/runtime/webhooks/durabletask/instances/{load_id}"),
            params={"code": self.host.master_key}, timeout=60).status_code

    def wait_for_end(self, load_id: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.durable_status(load_id)
            if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                return status
            time.sleep(0.2)
        raise AssertionError(f"load {load_id} did not end in {timeout}s: "
                             f"{self.durable_status(load_id)}\n{self.host.output()[-4000:]}")

    def blob_names(self) -> list[str]:
        """Every blob the app wrote to its bulk-load container (none if it never made it)."""
        container = BlobServiceClient.from_connection_string(
            self.env["AzureWebJobsStorage"]).get_container_client(self.env["BULK_LOAD_CONTAINER"])
        if not container.exists():
            return []
        return [blob.name for blob in container.list_blobs()]

    def kill(self) -> None:
        """Kill the host process at once (SIGKILL): no activity or timer gets to finish."""
        self.host.kill()

    def start_again(self) -> None:
        """A new host process on the same app, settings, task hub and storage."""
        self.host = start_host(self.app_dir, env=self.env)
        self.hosts.append(self.host)

    def restart(self) -> None:
        self.kill()
        self.start_again()


@pytest.fixture
def start_bulk_host(tmp_path, azurite, sfsim) -> Iterator[Callable[..., BulkLoadHost]]:
    started: list[BulkLoadHost] = []

    def start(**settings: str) -> BulkLoadHost:
        app_dir = tmp_path / f"app{len(started)}"
        shutil.copytree(APP, app_dir)
        host_json = json.loads((app_dir / "host.json").read_text())
        host_json["extensions"]["durableTask"]["hubName"] = "Bulk" + uuid.uuid4().hex[:12]
        (app_dir / "host.json").write_text(json.dumps(host_json))
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            **sfsim.app_settings(),
            "BULK_LOAD_CONTAINER": "bulk-" + uuid.uuid4().hex[:12],
            "BULK_LOAD_JOBS_TABLE": "J" + uuid.uuid4().hex[:12],
            "BULK_LOAD_POLL_INTERVAL": "0.2",
            "BULK_LOAD_MAX_WAIT": "60",
            "BULK_LOAD_ACTIVITY_RETRY_DELAY": "0.1",
            **settings,
        }
        host = start_host(app_dir, env=env, log_path=tmp_path / f"host{len(started)}.log")
        handle = BulkLoadHost(app_dir, env, host, [host])
        started.append(handle)
        return handle

    yield start
    for handle in started:
        for host in handle.hosts:
            host.stop()
