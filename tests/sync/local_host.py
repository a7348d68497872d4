"""The sync app (tests/sync/host_app) on the local Functions host, for the tests that
drive it over HTTP: start, restart with other settings, read the status, wait."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devhost.testing import RunningHost, start_host
from tests.sync.sources import AssetSource

APP = Path(__file__).parent / "host_app"
JOB = "asset-changes"
SOURCE_PASSWORD = "source-pw-" + uuid.uuid4().hex[:8]


@dataclass
class SyncHost:
    app_dir: Path
    env: dict[str, str]
    host: RunningHost

    def get(self, path: str) -> requests.Response:
        return requests.get(self.host.url(path), params={"code": self.host.function_key},
                            timeout=30)

    def post(self, path: str) -> requests.Response:
        return requests.post(self.host.url(path), params={"code": self.host.function_key},
                             timeout=30)

    def status(self) -> dict:
        response = self.get(f"/api/sync/{JOB}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.status()
            if predicate(body):
                return body
            time.sleep(0.2)
        raise AssertionError(f"condition not met in {timeout}s: {json.dumps(self.status())}\n"
                             f"{self.host.output()[-4000:]}")

    def restart(self) -> None:
        self.host = start_host(self.app_dir, env=self.env)


def run_ended(body: dict) -> bool:
    return body["lock"]["runtimeStatus"] in {"Completed", "Failed", "Terminated"}


@pytest.fixture
def sync_host(tmp_path, azurite, sfsim, sqlite_assets: AssetSource) -> Iterator[SyncHost]:
    app_dir = tmp_path / "app"
    shutil.copytree(APP, app_dir)
    host_json = json.loads((app_dir / "host.json").read_text())
    host_json["extensions"]["durableTask"]["hubName"] = "Sync" + uuid.uuid4().hex[:12]
    (app_dir / "host.json").write_text(json.dumps(host_json))
    suffix = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "SALESFORCE_LOGIN_URL": sfsim.login_url,
        "SALESFORCE_CLIENT_ID": sfsim.client_id,
        "SALESFORCE_CLIENT_SECRET": sfsim.client_secret,
        "SYNC_WATERMARK_TABLE": f"W{suffix}",
        "SYNC_RUNS_TABLE": f"R{suffix}",
        "SYNC_DEAD_LETTER_TABLE": f"D{suffix}",
        "SYNC_PAGE_RETRY_DELAY": "0.2",
        "SYNC_PAGES_PER_GENERATION": "3",
        "SYNC_ASSET_CHANGES_ENABLED": "true",
        # Once a year: the tests drive ticks through POST /api/sync/{job}/run.
        "SYNC_ASSET_CHANGES_SCHEDULE": "0 0 0 1 1 *",
        # SQLite ignores a password; it is there to prove none leaks into logs or history.
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": sqlite_assets.connection_string
        + f"PWD={SOURCE_PASSWORD};",
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": sqlite_assets.view,
        "SYNC_ASSET_CHANGES_LAG": "0",
        "SYNC_ASSET_CHANGES_PAGE_SIZE": "10",
        "SYNC_ASSET_CHANGES_MAX_RUN_TIME": "60",
        "SYNC_ASSET_CHANGES_MIN_INTERVAL": "0",
    }
    handle = SyncHost(app_dir, env, start_host(app_dir, env=env))
    yield handle
    handle.host.stop()


