"""A run synced in key partitions, its host killed at named points (shared/crash_points.py)
and restarted: nothing lost, every record at its newest value, rows sent again at most the
unflushed pages of each partition, the counts exact."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared.crash_points import CRASH_EXIT_CODE, CRASH_SETTING
from shared.sql.keyset import Position
from shared.sync.pages import PAGE_AFTER_DELIVERY
from shared.sync.partitions import PARTITIONS_AFTER_JOIN, PARTITIONS_BEFORE_JOIN
from tests.sync.local_host import JOB, run_ended
from tests.sync.sources import BASE, create_asset_source
from tests.sync.test_sync_crash_points import (
    restart_with_crash_at,
    restart_without_crash_until_the_run_ended,
    sync_state_of,
)

INITIAL = Position(datetime(1900, 1, 1))
CHECKPOINT_PAGES, IN_FLIGHT, PAGE_SIZE = 2, 2, 10


class RecordingProcessApi:
    """An HTTP sink target that keeps every record it is sent (re-sent ones too), in the
    order it accepted them; each answer takes 20 ms."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/assets"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        records = json.loads(Request(environ).get_data())["records"]
        time.sleep(0.02)
        with self._lock:
            self.received += [(record["assetId"], record["status"]) for record in records]
        return Response('{"errors": []}', mimetype="application/json")(
            environ, start_response)

    def newest(self) -> dict[int, str]:
        return dict(self.received)  # the last status each asset was sent with

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def process_api():
    api = RecordingProcessApi()
    yield api
    api.stop()


@pytest.fixture
def changes(sqlite_odbc):
    """Partition 0 of 2 (even keys): assets 2-20, each changed twice, two pages.
    Partition 1 (odd keys): assets 1-299, 1-29 changed twice, 17 pages."""
    source = create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)
    even, odd = range(2, 21, 2), range(1, 300, 2)
    source.insert(((n, BASE + timedelta(seconds=n)) for n in [*even, *odd]), "first")
    source.insert(((n, BASE + timedelta(seconds=1000 + n)) for n in [*even, *range(1, 30, 2)]),
                  "second")
    return source


def expected_newest() -> dict[int, str]:
    changed_twice = {*range(2, 21, 2), *range(1, 30, 2)}
    return {n: "second" if n in changed_twice else "first"
            for n in [*range(2, 21, 2), *range(1, 300, 2)]}


def start_partitioned_run_killed_at(sync_host, changes, process_api, point: str) -> None:
    restart_with_crash_at(
        sync_host, point, SYNC_ASSET_CHANGES_PARTITIONS="2",
        SYNC_ASSET_CHANGES_SOURCE_VIEW=changes.view, SYNC_ASSET_CHANGES_SINK="http",
        SYNC_ASSET_CHANGES_HTTP_URL=process_api.url,
        SYNC_CHECKPOINT_PAGES=str(CHECKPOINT_PAGES), SYNC_CHECKPOINT_INTERVAL="600",
        SYNC_PAGES_IN_FLIGHT=str(IN_FLIGHT))
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    assert sync_host.host.process.wait(timeout=60) == CRASH_EXIT_CODE


def test_killed_with_one_partition_done_and_one_midway_nothing_is_lost(
    sync_host, changes, process_api
):
    start_partitioned_run_killed_at(sync_host, changes, process_api,
                                    f"{PAGE_AFTER_DELIVERY}@10")
    state = sync_state_of(sync_host)
    watermark = state.watermarks.read(JOB, "timestamp", INITIAL)
    rows = state.partitions.of_run(JOB, "timestamp", watermark.run_id)
    assert rows[0].done and rows[0].totals.rows == 20
    assert not rows[1].done
    assert watermark.position == INITIAL  # not before every partition is done
    sent_before = len(process_api.received)

    run = restart_without_crash_until_the_run_ended(sync_host)

    assert (run["outcome"], run["rows"], run["delivered"], run["pages"]) == (
        "succeeded", 185, 185, 2 + 17)
    assert process_api.newest() == expected_newest()  # nothing lost, the newest last
    assert sent_before >= 10 * PAGE_SIZE
    sent = [n for n, _status in process_api.received]
    resent_even = sum(1 for n in sent if n % 2 == 0) - 20
    resent_odd = sum(1 for n in sent if n % 2) - 165
    assert resent_even == 0  # the partition that was done sends nothing again
    assert 0 < resent_odd <= (CHECKPOINT_PAGES + IN_FLIGHT) * PAGE_SIZE
    watermark = state.watermarks.read(JOB, "timestamp", INITIAL)
    assert watermark.position == Position(BASE + timedelta(seconds=1029), (29,))
    assert state.partitions.of_run(JOB, "timestamp", watermark.run_id) == {}


@pytest.mark.parametrize("point", [PARTITIONS_BEFORE_JOIN, PARTITIONS_AFTER_JOIN])
def test_killed_around_the_join_the_watermark_moves_once_and_nothing_is_sent_again(
    sync_host, changes, process_api, point
):
    start_partitioned_run_killed_at(sync_host, changes, process_api, point)
    state = sync_state_of(sync_host)
    before = state.watermarks.read(JOB, "timestamp", INITIAL)
    assert len(process_api.received) == 185
    left = state.partitions.of_run(JOB, "timestamp", before.run_id)
    # Before the join both partitions' rows wait, done; after it, the same transaction
    # that moved the watermark deleted them.
    assert ({index: row.done for index, row in left.items()} == {0: True, 1: True}) is (
        point == PARTITIONS_BEFORE_JOIN)
    assert (left == {}) is (point == PARTITIONS_AFTER_JOIN)

    run = restart_without_crash_until_the_run_ended(sync_host)

    assert (run["outcome"], run["rows"], run["delivered"], run["pages"]) == (
        "succeeded", 185, 185, 19)
    assert len(process_api.received) == 185
    assert process_api.newest() == expected_newest()
    watermark = state.watermarks.read(JOB, "timestamp", INITIAL)
    assert watermark.position == Position(BASE + timedelta(seconds=1029), (29,))
    moved_before_the_kill = point == PARTITIONS_AFTER_JOIN
    assert (before.position == watermark.position) is moved_before_the_kill
    assert state.partitions.of_run(JOB, "timestamp", before.run_id) == {}


class SlowOddProcessApi(RecordingProcessApi):
    """Answers a batch of odd assets (partition 1 of 2) after 3 s, the others at once."""

    def __call__(self, environ, start_response):
        records = json.loads(Request(environ).get_data())["records"]
        if any(record["assetId"] % 2 for record in records):
            time.sleep(3)
        with self._lock:
            self.received += [(record["assetId"], record["status"]) for record in records]
        return Response('{"errors": []}', mimetype="application/json")(
            environ, start_response)


def test_a_partition_whose_worker_died_fails_the_run_once_the_other_partition_ended(
    sync_host, sqlite_odbc
):
    # Two worker processes: partition 0's worker dies at its second page (the activity
    # fails, the host lives on) while partition 1's only page waits 3 s for its answer.
    # The run ends after partition 1's activity did (the round is awaited whole), counting
    # what each partition checkpointed; the next run sends every row.
    source = create_asset_source(sqlite_odbc, "sqlite")
    source.insert((n, BASE + timedelta(seconds=n)) for n in [*range(2, 61, 2), *range(1, 20, 2)])
    api = SlowOddProcessApi()
    try:
        restart_with_crash_at(
            sync_host, f"{PAGE_AFTER_DELIVERY}@2", FUNCTIONS_WORKER_PROCESS_COUNT="2",
            SYNC_ASSET_CHANGES_PARTITIONS="2", SYNC_ASSET_CHANGES_SOURCE_VIEW=source.view,
            SYNC_ASSET_CHANGES_SINK="http", SYNC_ASSET_CHANGES_HTTP_URL=api.url,
            SYNC_CHECKPOINT_PAGES="1", SYNC_PAGES_IN_FLIGHT="1")
        assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
        body = sync_host.wait_for(run_ended, timeout=60)
        [run] = body["lastRuns"][:1]
        assert (body["lock"]["runtimeStatus"], run["outcome"]) == ("Failed", "failed")
        # Partition 1 reached the end and is counted, with what partition 0 checkpointed.
        rows = sync_state_of(sync_host).partitions.of_run(JOB, "timestamp", run["runId"])
        assert rows[1].done and rows[1].totals.rows == 10
        assert run["rows"] == sum(row.totals.rows for row in rows.values()), (run, rows)
        assert sum(1 for n, _status in api.received if n % 2) == 10

        sync_host.host.stop()
        sync_host.env.pop(CRASH_SETTING)
        sync_host.restart()
        assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
        body = sync_host.wait_for(lambda body: run_ended(body) and body["lastRuns"][0][
            "runId"] != run["runId"], timeout=60)
        assert body["lastRuns"][0]["outcome"] == "succeeded"
        assert {n for n, _status in api.received} == {*range(2, 61, 2), *range(1, 20, 2)}
    finally:
        api.stop()
