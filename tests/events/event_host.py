"""The event queue app on the local host for tests: start, post, watch, read the drain's log."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from devhost.testing import RunningHost, start_host
from tests.sync.sources import AssetSource

APP = Path(__file__).parent / "host_app"
BUSY = {"Pending", "Running", "ContinuedAsNew", "Suspended"}
# shared/events/batch_processing.py logs "event drain batch started: ..." when a batch is
# staged and "event drain batch ended: ..." once it is settled.
_LINE = re.compile(r"^\[(?P<at>[^\]]+)\] event drain batch (?P<what>started|ended)\b")


@dataclass
class EventHost:
    app_dir: Path
    env: dict[str, str]
    host: RunningHost
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, tmp_path: Path, env: dict[str, str], app: Path = APP) -> EventHost:
        app_dir = tmp_path / "app"
        shutil.copytree(app, app_dir)
        host_json = json.loads((app_dir / "host.json").read_text())
        host_json["extensions"]["durableTask"]["hubName"] = "Ev" + uuid.uuid4().hex[:12]
        (app_dir / "host.json").write_text(json.dumps(host_json))
        handle = cls(app_dir, env, start_host(app_dir, env=env))
        handle.logs.append(handle.host.log_path)
        return handle

    def restart(self) -> None:
        self.host = start_host(self.app_dir, env=self.env)
        self.logs.append(self.host.log_path)

    def post(self, path: str, body: object | None = None, raw: bytes | None = None,
             key: bool = True) -> requests.Response:
        params = {"code": self.host.function_key} if key else {}
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        return requests.post(self.host.url(path), params=params, data=data, timeout=60)

    def post_until_accepted(self, events: list[dict], timeout: float = 180.0) -> dict:
        """Post like a client that retries until stored (the host may be down a while)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.post("/api/events", {"events": events})
                if answer.status_code == 202:
                    return answer.json()
                assert answer.status_code >= 500, answer.text
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "events never accepted"
            time.sleep(0.2)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.host.url(path), params={"code": self.host.function_key},
                            timeout=60)

    def status(self) -> dict:
        answer = requests.get(self.host.url("/api/events"),
                              params={"code": self.host.function_key}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 240.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.status()
            if predicate(body):
                return body
            time.sleep(0.25)
        raise AssertionError(f"condition not met in {timeout}s: {json.dumps(self.status())}\n"
                             f"{self.host.output()[-3000:]}")

    def wait_until_drained(self, timeout: float = 240.0) -> dict:
        return self.wait_for(drained, timeout)

    def batch_intervals(self) -> list[tuple[datetime, datetime]]:
        """When the drain processed batches, from every host log (a batch cut off by a
        kill ends at that log's last line; one the restarted host finishes, without
        staging it again, started at that host's first line)."""
        intervals = []
        for number, log in enumerate(self.logs):
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            stamps = [_stamp(line) for line in lines if line.startswith("[")]
            start = None
            first = True
            for line in lines:
                match = _LINE.match(line)
                if not match:
                    continue
                at = _stamp(line)
                if match["what"] == "started":
                    assert start is None, f"two batches processed at once in {log}"
                    start = at
                elif start is None and first and number > 0:
                    intervals.append((min(stamp for stamp in stamps if stamp), at))
                else:
                    assert start is not None, f"a batch ended that never started in {log}"
                    intervals.append((start, at))
                    start = None
                first = False
            if start is not None:
                intervals.append((start, max(stamp for stamp in stamps if stamp)))
        return sorted(intervals)


def drained(body: dict) -> bool:
    return (body["queue"]["depth"] == 0 and body["drain"]["runtimeStatus"] not in BUSY
            and body["drain"]["signal"] == "idle")


def assert_no_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    previous_end = None
    count = 0
    for start, end in intervals:
        assert previous_end is None or start >= previous_end, (
            f"a batch started at {start} while another ran until {previous_end}")
        previous_end = end
        count += 1
    return count


def _stamp(line: str) -> datetime | None:
    try:
        return datetime.fromisoformat(line[1:line.index("]")].replace("Z", "+00:00"))
    except ValueError:
        return None


def event_env(azurite, sfsim, source: AssetSource, **changes: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SALESFORCE_LOGIN_URL": sfsim.login_url,
        "SALESFORCE_CLIENT_ID": sfsim.client_id,
        "SALESFORCE_CLIENT_SECRET": sfsim.client_secret,
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": source.connection_string,
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": source.view,
        "SYNC_ASSET_CHANGES_SOURCE_DIALECT": source.dialect,
        "EVENTS_QUEUE_TABLE": f"Q{suffix}",
        "EVENTS_DEAD_LETTER_TABLE": f"D{suffix}",
        "EVENTS_STATE_TABLE": f"S{suffix}",
        "BATCH_CONTAINER": f"events-{suffix}",
        "BATCH_INSTANCES_TABLE": f"B{suffix}",
        "EVENTS_RETRY_DELAY": "0.5",
        "EVENTS_SAFETY_SCHEDULE": "*/2 * * * * *",
        **changes,
    }


class VersionedAssets:
    """The asset source where each write keeps the highest version (in Quantity, and as
    `v<version>` in Status), as a source system whose rows only move forward does."""

    def __init__(self, source: AssetSource) -> None:
        self.source = source
        self.lock = threading.Lock()
        self.connection = source.connect()
        self.connection.execute("PRAGMA journal_mode=WAL")

    def write(self, versions: Iterable[tuple[int, int]]) -> None:
        with self.lock:
            cursor = self.connection.cursor()
            cursor.executemany(
                f'UPDATE {self.source.table} SET "Quantity" = ?, "Status" = ? '
                'WHERE "Asset_ID" = ? AND "Quantity" < ?',
                [(version, f"v{version}", asset_id, version) for asset_id, version in versions])
