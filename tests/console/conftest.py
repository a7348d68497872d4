"""The whole app (the repository's function_app.py) on the local host, for the console tests:
Azurite, a SQLite asset source, the Salesforce simulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient

from devhost.testing import RunningHost, start_host
from devtools import services
from sfsim.testing import SimulatorHandle
from shared.batch import BATCH_ORCHESTRATOR, batch_durable_id
from shared.batch.instances import record_staging, set_status
from shared.batch.plan import RunInput, RunProgress
from shared.storage.tables import table_client
from tests.deployed_app import deployed_app_dir, deployed_app_env
from tests.sync.sources import AssetSource, create_asset_source

SYNC_JOB = "asset-changes"
ENDED = {"Completed", "Failed", "Terminated"}


@dataclass
class ConsoleHost:
    host: RunningHost
    source: AssetSource
    env: dict[str, str]

    def seed_batch_instances(self, job: str, statuses: dict[str, str]) -> None:
        """Instance rows of `job` as its instances leave them, one a minute apart in the
        order given (the last is the newest), with their counts. An EXECUTING one gets an
        orchestration that runs, as a real one has: the list settles an active row whose
        orchestration ended or is missing."""
        table = table_client(TableServiceClient.from_connection_string(
            self.env["AzureWebJobsStorage"]), self.env["BATCH_INSTANCES_TABLE"])
        start = datetime.now(UTC) - timedelta(minutes=len(statuses))
        for minute, (instance_id, status) in enumerate(statuses.items()):
            record_staging(table, job, instance_id, batch_durable_id(job, instance_id),
                           start + timedelta(minutes=minute))
            result = {"batchJobInstanceId": instance_id, "status": status, "totalRecords": 4,
                      "processedRecords": 4, "successfulRecords": 3, "failedRecords": 1}
            if status != "EXECUTING":  # an ended instance's result has its elapsed time
                result["elapsedTimeInMillis"] = 90_000
            else:
                self._start_running_orchestration(job, instance_id)
            set_status(table, job, instance_id, status, result)

    def _start_running_orchestration(self, job: str, instance_id: str) -> None:
        """The instance's orchestration, running for the rest of the test: its turn taken,
        its one block never staged, so its first block's activity fails and the next
        attempt waits an hour."""
        progress = RunProgress(job, instance_id, total_records=4, block_size=4, block_count=1,
                               started_at=datetime.now(UTC).isoformat(), turn_taken=True)
        run = RunInput(progress, activity_attempts=2, activity_retry_delay=3600.0,
                       blocks_per_generation=10, turn_check_interval=1.0)
        durable_id = batch_durable_id(job, instance_id)
        started = requests.post(
            self.host.url(f"/runtime/webhooks/durabletask/orchestrators/{BATCH_ORCHESTRATOR}/"
                          f"{durable_id}"),
            params={"code": self.host.master_key}, json=run.to_json(), timeout=30)
        assert started.status_code == 202, started.text

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.host.url(path), params=params,
                            headers={"x-functions-key": self.host.function_key}, timeout=30)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(self.host.url(path), json=body,
                             headers={"x-functions-key": self.host.function_key}, timeout=60)

    def sync_status(self) -> dict[str, Any]:
        answer = self.get(f"/api/sync/{SYNC_JOB}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def load_status(self, load_id: str) -> dict[str, Any]:
        answer = requests.get(
            self.host.url(f"/runtime/webhooks/durabletask/instances/{load_id}"),
            params={"code": self.host.master_key}, timeout=30)
        assert answer.status_code in (200, 202), answer.text
        return answer.json()

    def wait_for(self, read: Callable[[], dict[str, Any]],
                 done: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = read()
            if done(body):
                return body
            time.sleep(0.2)
        raise AssertionError(f"not reached in {timeout:.0f} s: {json.dumps(read())[:2000]}\n"
                             f"{self.host.output()[-4000:]}")

    def run_sync_now(self) -> str:
        """One run on demand, waited for; its run id."""
        started = self.post(f"/api/sync/{SYNC_JOB}/run")
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        self.wait_for(self.sync_status, lambda body: any(
            run["runId"] == run_id and run["outcome"] != "running"
            for run in body["lastRuns"]))
        return run_id

    def wait_for_load(self, load_id: str) -> dict[str, Any]:
        return self.wait_for(lambda: self.load_status(load_id),
                             lambda status: status["runtimeStatus"] in ENDED)


@pytest.fixture(scope="module")
def console_host(tmp_path_factory: pytest.TempPathFactory, azurite: services.Azurite,
                 sfsim_server: SimulatorHandle) -> Iterator[ConsoleHost]:
    """The app as deployed (function_app.py and host.json), in its own task hub and tables."""
    sfsim_server.reset()
    work = tmp_path_factory.mktemp("console")
    app_dir = deployed_app_dir(work / "app", "Console" + uuid.uuid4().hex[:12])
    services.require_odbc_driver("SQLite3", "libsqliteodbc")
    source = create_asset_source(
        services.sqlite_odbc_connection_string(work / "source.db"), "sqlite")
    suffix = uuid.uuid4().hex[:10]
    # The timers tick once a year: the tests start runs themselves, through the API or the
    # console.
    env = {
        **deployed_app_env(azurite.connection_string),
        **sfsim_server.app_settings(),
        "SYNC_WATERMARK_TABLE": f"W{suffix}",
        "SYNC_RUNS_TABLE": f"R{suffix}",
        "SYNC_DEAD_LETTER_TABLE": f"D{suffix}",
        "SYNC_ASSET_CHANGES_ENABLED": "true",
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": source.connection_string,
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": source.view,
        "SYNC_ASSET_CHANGES_LAG": "0",
        "SYNC_ASSET_CHANGES_PAGE_SIZE": "25",
        "SYNC_ASSET_CHANGES_MIN_INTERVAL": "0",
        "BULK_LOAD_CONTAINER": "console-" + suffix,
        "BATCH_CONTAINER": "console-batch-" + suffix,
        "BATCH_INSTANCES_TABLE": f"B{suffix}",
        "BULK_LOAD_POLL_INTERVAL": "0.2",
        "BULK_LOAD_ACTIVITY_RETRY_DELAY": "0.1",
    }
    host = start_host(app_dir, env=env, log_path=work / "host.log")
    yield ConsoleHost(host, source, env)
    host.stop()
