"""The whole app (`function_app.py` as deployed) on the local host, on fresh storage names.

Azurite, the simulator and a SQLite asset source are the real local services; every
`WholeApp` gets its own task hub, tables and blob container, so trials never see each
other's state. The host can be started armed with crash points, killed, and started again
on the same storage, as a crash and a recycle would leave it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devhost.testing import RunningHost, start_host
from sfsim.testing import SimulatorHandle
from tests.deployed_app import deployed_app_dir, deployed_app_env
from tests.sync.sources import AssetSource

JOB = "asset-changes"
DURABLE = "/runtime/webhooks/durabletask/instances"


def whole_app_env(storage: str, sfsim: SimulatorHandle, source: AssetSource,
                  suffix: str) -> dict[str, str]:
    # The timers tick once a year: the scenarios tick through POST /api/sync/{job}/run.
    return {
        **deployed_app_env(storage),
        "SALESFORCE_LOGIN_URL": sfsim.login_url,
        "SALESFORCE_CLIENT_ID": sfsim.client_id,
        "SALESFORCE_CLIENT_SECRET": sfsim.client_secret,
        "SALESFORCE_MAX_RETRIES": "2",
        "SALESFORCE_RETRY_BACKOFF": "0.05",
        "SYNC_WATERMARK_TABLE": f"W{suffix}",
        "SYNC_RUNS_TABLE": f"R{suffix}",
        "SYNC_DEAD_LETTER_TABLE": f"D{suffix}",
        "SYNC_PAGE_RETRY_DELAY": "0.2",
        "SYNC_PAGES_PER_GENERATION": "3",
        # One page per activity: the 5 pages cross a continue_as_new, as the points expect.
        "SYNC_PAGES_PER_ACTIVITY": "1",
        "SYNC_ASSET_CHANGES_ENABLED": "true",
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": source.connection_string,
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": source.view,
        "SYNC_ASSET_CHANGES_LAG": "0",
        "SYNC_ASSET_CHANGES_PAGE_SIZE": "10",
        "SYNC_ASSET_CHANGES_MAX_RUN_TIME": "120",
        "SYNC_ASSET_CHANGES_MIN_INTERVAL": "0",
        "BULK_LOAD_CONTAINER": f"chaos-{suffix}",
        "BULK_LOAD_JOBS_TABLE": f"BJ{suffix}",
        "BULK_LOAD_POLL_INTERVAL": "0.2",
        "BULK_LOAD_ACTIVITY_RETRY_DELAY": "0.1",
        "BATCH_CONTAINER": f"chaos-batch-{suffix}",
        "BATCH_INSTANCES_TABLE": f"BI{suffix}",
        "BATCH_DEAD_LETTER_TABLE": f"BD{suffix}",
        "BATCH_ACTIVITY_RETRY_DELAY": "0.1",
        "BATCH_CONTACTS_ENABLED": "true",
        "BATCH_CONTACTS_BLOCK_SIZE": "50",
        "BATCH_BLOCKS_PER_GENERATION": "2",
        "BATCH_TURN_CHECK_INTERVAL": "1",
        "EVENTS_QUEUE_TABLE": f"EQ{suffix}",
        "EVENTS_DEAD_LETTER_TABLE": f"ED{suffix}",
        "EVENTS_STATE_TABLE": f"ES{suffix}",
        "EVENTS_BATCH_SIZE": "10",
        "EVENTS_BATCHES_PER_GENERATION": "2",
        "EVENTS_RETRY_DELAY": "0.5",
    }


@dataclass
class WholeApp:
    app_dir: Path
    env: dict[str, str]
    sfsim: SimulatorHandle
    source: AssetSource
    host: RunningHost | None = None
    logs: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, workdir: Path, storage: str, sfsim: SimulatorHandle,
               source: AssetSource) -> WholeApp:
        suffix = uuid.uuid4().hex[:10]
        app_dir = deployed_app_dir(workdir / f"app-{suffix}", f"Chaos{suffix}",
                                   maxConcurrentActivityFunctions=4,
                                   maxConcurrentOrchestratorFunctions=4)
        return cls(app_dir, whole_app_env(storage, sfsim, source, suffix), sfsim, source)

    # -- the host ---------------------------------------------------------------------

    def start(self, extra_env: Mapping[str, str] | None = None) -> RunningHost:
        self.stop()
        log_path = self.app_dir / f"host-{len(self.logs) + 1}.log"
        self.host = start_host(self.app_dir, env={**self.env, **(extra_env or {})},
                               log_path=log_path)
        self.logs.append(str(log_path))
        return self.host

    def wait_for_exit(self, timeout: float) -> int | None:
        """The host's exit code, or None if it still runs after `timeout` seconds."""
        assert self.host is not None
        try:
            return self.host.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.host is not None:
            self.host.kill()

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()

    def output(self) -> str:
        return "\n".join(Path(log).read_text(encoding="utf-8", errors="replace")
                         for log in self.logs)

    # -- HTTP -------------------------------------------------------------------------

    @property
    def running_host(self) -> RunningHost:
        assert self.host is not None
        return self.host

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        host = self.running_host
        params = {"code": host.function_key, **kwargs.pop("params", {})}
        return requests.request(method, host.url(path), params=params,
                                timeout=kwargs.pop("timeout", 30), **kwargs)

    def durable_status(self, instance_id: str) -> dict[str, Any] | None:
        host = self.running_host
        answer = requests.get(host.url(f"{DURABLE}/{instance_id}"),
                              params={"code": host.master_key}, timeout=30)
        return None if answer.status_code == 404 else answer.json()

    def sync_status(self) -> dict[str, Any]:
        answer = self.request("GET", f"/api/sync/{JOB}")
        answer.raise_for_status()
        return answer.json()


def wait_until(condition: Any, timeout: float, interval: float = 0.2) -> Any:
    """The first truthy value of `condition()` within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None
