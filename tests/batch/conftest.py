"""Fixtures of the batch tests: the tests' batch app on the local host, over Azurite."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from devhost.testing import RunningHost, start_host

APP = Path(__file__).parent / "host_app"
ENDED = ("SUCCESSFUL", "FAILED_PROCESS_RECORDS", "FAILED", "STOPPED")


@dataclass
class BatchHost:
    app_dir: Path
    env: dict[str, str]
    log_dir: Path
    host: RunningHost
    hosts: list[RunningHost] = field(default_factory=list)

    def post(self, job: str, body: bytes | list, content_type: str = "application/json",
             **params: str) -> requests.Response:
        data = json.dumps(body).encode() if isinstance(body, list) else body
        return requests.post(self.host.url(f"/api/batch-jobs/{job}"), data=data,
                             params={"code": self.host.function_key, **params},
                             headers={"Content-Type": content_type}, timeout=120)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.host.url(path), params={"code": self.host.function_key},
                            timeout=60)

    def result(self, job: str, instance_id: str) -> dict[str, Any]:
        response = self.get(f"/api/batch-jobs/{job}/{instance_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_end(self, job: str, instance_id: str, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.result(job, instance_id)
            if result.get("status") in ENDED:
                return result
            time.sleep(0.2)
        raise AssertionError(f"{job}/{instance_id} did not end in {timeout}s: "
                             f"{self.result(job, instance_id)}\n{self.host.output()[-3000:]}")

    def durable_history(self, durable_id: str) -> list[dict[str, Any]]:
        response = requests.get(
            self.host.url(f"/runtime/webhooks/durabletask/instances/{durable_id}"),
            params={"code": self.host.master_key, "showHistory": "true"}, timeout=60)
        return response.json().get("historyEvents") or []

    def blob_names(self) -> list[str]:
        container = BlobServiceClient.from_connection_string(
            self.env["AzureWebJobsStorage"]).get_container_client(self.env["BATCH_CONTAINER"])
        if not container.exists():
            return []
        return [blob.name for blob in container.list_blobs()]

    def calls(self) -> Counter[tuple[str, str, int]]:
        path = self.log_dir / "calls.log"
        if not path.exists():
            return Counter()
        found: Counter[tuple[str, str, int]] = Counter()
        for line in path.read_text().splitlines():
            step, instance, index = line.split(",")
            found[(step, instance, int(index))] += 1
        return found

    def kill(self) -> None:
        self.host.kill()

    def start_again(self) -> None:
        self.host = start_host(self.app_dir, env=self.env)
        self.hosts.append(self.host)


@pytest.fixture
def start_batch_host(tmp_path, azurite) -> Iterator[Callable[..., BatchHost]]:
    started: list[BatchHost] = []

    def start(**settings: str) -> BatchHost:
        app_dir = tmp_path / f"app{len(started)}"
        shutil.copytree(APP, app_dir)
        host_json = json.loads((app_dir / "host.json").read_text())
        host_json["extensions"]["durableTask"]["hubName"] = "Batch" + uuid.uuid4().hex[:12]
        (app_dir / "host.json").write_text(json.dumps(host_json))
        log_dir = tmp_path / f"log{len(started)}"
        log_dir.mkdir()
        suffix = uuid.uuid4().hex[:10]
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "BATCH_CONTAINER": "batch-" + suffix,
            "BATCH_INSTANCES_TABLE": "BatchInstances" + suffix,
            "BATCH_ACTIVITY_RETRY_DELAY": "0.1",
            "BATCH_TURN_CHECK_INTERVAL": "5",
            "BATCH_TEST_LOG_DIR": str(log_dir),
            **settings,
        }
        host = start_host(app_dir, env=env, log_path=tmp_path / f"host{len(started)}.log")
        handle = BatchHost(app_dir, env, log_dir, host, [host])
        started.append(handle)
        return handle

    yield start
    for handle in started:
        for host in handle.hosts:
            host.stop()
