"""The host killed at named points of a run (shared/crash_points.py), then restarted:
nothing lost, nothing duplicated, no lock left held, the run's counts exact."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import requests
from azure.data.tables import TableServiceClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sfsim.testing import SimulatorHandle
from shared.crash_points import CRASH_EXIT_CODE, CRASH_SETTING
from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.sql.keyset import Position
from shared.sync.backlog_submission import BACKLOG_AFTER_PART_SUBMITTED
from shared.sync.lock import START_GRACE
from shared.sync.pages import PAGE_AFTER_DELIVERY, PAGE_AFTER_WATERMARK
from shared.sync.starter import RUN_START_AFTER_LEASE
from shared.sync.state import SyncState
from tests.sync.local_host import JOB, SyncHost, run_ended
from tests.sync.sources import BASE, create_asset_source


def stored_assets(sim) -> list[str]:
    return [record["External_Id__c"] for record in sim.records("Asset")]


@contextmanager
def sfsim_client(sfsim: SimulatorHandle) -> Iterator[SalesforceClient]:
    with SalesforceClient(SalesforceCredentials(
            login_url=sfsim.login_url, client_id=sfsim.client_id,
            client_secret=sfsim.client_secret)) as client:
        yield client


def restart_with_crash_at(sync_host: SyncHost, point: str, **settings: str) -> None:
    sync_host.host.stop()
    sync_host.env.update({CRASH_SETTING: point, **settings})
    sync_host.restart()


def restart_without_crash_until_the_run_ended(sync_host: SyncHost) -> dict:
    """Restart the host with no crash point; the run it resumes completes: its last run."""
    sync_host.env.pop(CRASH_SETTING)
    sync_host.restart()
    body = sync_host.wait_for(run_ended, timeout=90)
    assert body["lock"]["runtimeStatus"] == "Completed", body
    return body["lastRuns"][0]


def sync_state_of(sync_host: SyncHost) -> SyncState:
    return SyncState(TableServiceClient.from_connection_string(
        sync_host.env["AzureWebJobsStorage"]), sync_host.env["SYNC_WATERMARK_TABLE"],
        sync_host.env["SYNC_RUNS_TABLE"], sync_host.env["SYNC_DEAD_LETTER_TABLE"])


def test_a_lease_whose_start_never_happened_is_freed_at_the_next_tick(
    sync_host, sqlite_assets, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 31))
    # A lease held for the max run time would outlast the wait below many times over.
    restart_with_crash_at(sync_host, RUN_START_AFTER_LEASE,
                          SYNC_ASSET_CHANGES_MAX_RUN_TIME="600")
    with pytest.raises(requests.ConnectionError):
        sync_host.post(f"/api/sync/{JOB}/run")
    assert sync_host.host.process.wait(timeout=30) == CRASH_EXIT_CODE
    sync_host.env.pop(CRASH_SETTING)
    sync_host.restart()  # the lease of a run that never started is left behind

    body = sync_host.status()
    assert body["lock"]["lease"] is not None and body["lock"]["runtimeStatus"] is None
    deadline = time.monotonic() + START_GRACE.total_seconds() + 20
    answer = sync_host.post(f"/api/sync/{JOB}/run")
    while answer.status_code == 409 and time.monotonic() < deadline:
        assert answer.json()["code"] == "LOCK_HELD", answer.json()
        time.sleep(1)
        answer = sync_host.post(f"/api/sync/{JOB}/run")

    assert answer.status_code == 202, answer.json()
    assert time.monotonic() < deadline
    body = sync_host.wait_for(run_ended)
    assert body["lock"]["runtimeStatus"] == "Completed"
    assert body["lock"]["state"] == "free"
    assert [run["outcome"] for run in body["lastRuns"]] == ["succeeded"]
    stored = stored_assets(sfsim)
    assert len(stored) == 30 and len(set(stored)) == 30


def test_a_page_checkpointed_whose_result_was_lost_is_counted_once(
    sync_host, sqlite_assets, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 81))
    # One page in flight: then at most one page beyond the checkpoint reaches the sink.
    restart_with_crash_at(sync_host, f"{PAGE_AFTER_WATERMARK}@2", SYNC_CHECKPOINT_PAGES="1",
                          SYNC_PAGES_IN_FLIGHT="1")
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    assert sync_host.host.process.wait(timeout=60) == CRASH_EXIT_CODE
    state = sync_state_of(sync_host)
    watermark = state.watermarks.read(JOB, "timestamp", Position(datetime(1900, 1, 1)))
    assert watermark.position.key == (20,)  # two pages checkpointed, one answered
    # The third page may have reached the sink while the second's checkpoint was written.
    assert len(stored_assets(sfsim)) in (20, 30)

    run = restart_without_crash_until_the_run_ended(sync_host)

    assert (run["outcome"], run["rows"], run["pages"], run["delivered"]) == (
        "succeeded", 80, 8, 80)
    stored = stored_assets(sfsim)
    assert len(stored) == 80 and len(set(stored)) == 80


class CountingProcessApi:
    """An HTTP sink target that counts every row it is sent (re-sent ones too) and the
    requests under way at once; each answer takes 50 ms, so that pages are in flight
    together."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.most_at_once = 0
        self._under_way = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/assets"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        with self._lock:
            self._under_way += 1
            self.most_at_once = max(self.most_at_once, self._under_way)
        try:
            records = json.loads(Request(environ).get_data())["records"]
            time.sleep(0.05)
            with self._lock:
                self.received += [record["assetId"] for record in records]
            return Response('{"errors": []}', mimetype="application/json")(
                environ, start_response)
        finally:
            with self._lock:
                self._under_way -= 1

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def counting_api():
    api = CountingProcessApi()
    yield api
    api.stop()


def test_killed_with_pages_in_flight_resends_at_most_the_unflushed_and_in_flight_pages(
    sync_host, sqlite_assets, counting_api
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 301))
    checkpoint_pages, in_flight, page_size = 2, 4, 10
    # The host dies when the sink accepted its 12th page, with other pages in flight and
    # accepted pages waiting for a checkpoint (written only once two wait: no timer).
    restart_with_crash_at(
        sync_host, f"{PAGE_AFTER_DELIVERY}@12", SYNC_ASSET_CHANGES_SINK="http",
        SYNC_ASSET_CHANGES_HTTP_URL=counting_api.url,
        SYNC_CHECKPOINT_PAGES=str(checkpoint_pages), SYNC_CHECKPOINT_INTERVAL="600",
        SYNC_PAGES_IN_FLIGHT=str(in_flight))
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    assert sync_host.host.process.wait(timeout=60) == CRASH_EXIT_CODE
    assert counting_api.most_at_once == in_flight
    sent_before_the_crash = len(counting_api.received)
    assert sent_before_the_crash >= 12 * page_size

    run = restart_without_crash_until_the_run_ended(sync_host)

    assert (run["outcome"], run["rows"], run["pages"], run["delivered"]) == (
        "succeeded", 300, 30, 300)
    assert set(counting_api.received) == set(range(1, 301))  # nothing lost
    resent = len(counting_api.received) - 300
    assert 0 < resent <= (checkpoint_pages + in_flight) * page_size


def test_a_backlog_staged_halfway_when_the_host_died_is_loaded_once_after_the_restart(
    sync_host, sqlite_assets, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 121))
    restart_with_crash_at(sync_host, f"{BACKLOG_AFTER_PART_SUBMITTED}@2",
                          SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD="50", SYNC_BACKLOG_PART_ROWS="40",
                          SYNC_BACKLOG_POLL_INTERVAL="0.2",
                          SYNC_BACKLOG_CONTAINER="backlog-" + uuid.uuid4().hex[:10])
    sfsim.clear_requests_log()
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    assert sync_host.host.process.wait(timeout=60) == CRASH_EXIT_CODE
    state = sync_state_of(sync_host)
    initial = Position(datetime(1900, 1, 1))
    # Two parts' jobs were closed; the watermark waits for all of them.
    assert state.watermarks.read(JOB, "timestamp", initial).position == initial

    run = restart_without_crash_until_the_run_ended(sync_host)

    assert (run["outcome"], run["mode"], run["rows"], run["pages"], run["delivered"]) == (
        "succeeded", "bulk", 120, 3, 120)
    created = [entry for entry in sfsim.requests_log()
               if entry["method"] == "POST" and entry["path"].endswith("/jobs/ingest")]
    assert len(created) == 2 + 3  # the staging tried again submits every part again
    stored = stored_assets(sfsim)
    assert len(stored) == 120 and len(set(stored)) == 120
    assert state.watermarks.read(JOB, "timestamp", initial).position == Position(BASE, (120,))


def test_a_job_of_a_crashed_stage_still_running_is_waited_for_before_the_later_changes(
    sync_host, sqlite_odbc, sfsim
):
    """Part 1's job (assets 1-10, their first change) was closed when the host died, and
    Salesforce is slow to run it; the stage tried again submits its parts anew. The run
    must not write the second changes (by pages) before that first job ended, or its
    older values land last."""
    changes = create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)
    changes.insert(((n, BASE + timedelta(seconds=n)) for n in range(1, 31)), "first")
    changes.insert(((n, BASE + timedelta(seconds=100 + n)) for n in range(1, 31)), "second")
    changes.insert(((n, BASE + timedelta(seconds=200 + n)) for n in range(31, 61)), "first")
    with changes.connect() as connection:  # Salesforce refuses it, in both attempts' jobs
        connection.execute(f'UPDATE {changes.table} SET "Serial_Number" = ? '
                           'WHERE "Asset_ID" = 3 AND "Status" = ?', "S" * 100, "first")
    # Jobs wait this long before they start: the crashed stage's first job is still
    # queued while the run goes on after the restart (set back once the host died).
    sfsim.configure(job_delay_seconds=30)
    restart_with_crash_at(sync_host, f"{BACKLOG_AFTER_PART_SUBMITTED}@1",
                          SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD="50",
                          SYNC_ASSET_CHANGES_SOURCE_VIEW=changes.view,
                          SYNC_BACKLOG_PART_ROWS="10", SYNC_BACKLOG_POLL_INTERVAL="0.2",
                          SYNC_BACKLOG_CONTAINER="backlog-" + uuid.uuid4().hex[:10])
    sfsim.clear_requests_log()
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    assert sync_host.host.process.wait(timeout=60) == CRASH_EXIT_CODE
    sfsim.configure(job_delay_seconds=0.2)

    run = restart_without_crash_until_the_run_ended(sync_host)
    with sfsim_client(sfsim) as client:
        created = [entry for entry in sfsim.requests_log()
                   if entry["method"] == "POST" and entry["path"].endswith("/jobs/ingest")]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(
                job.state in ("JobComplete", "Failed", "Aborted")
                for job in client.list_jobs()):
            time.sleep(0.5)

    # Counted once: from the jobs of the stage tried again, not from the first attempt's.
    assert (run["outcome"], run["rows"], run["delivered"], run["deadLettered"]) == (
        "succeeded", 90, 89, 1)
    letters = sync_state_of(sync_host).dead_letters.rows(JOB)
    assert [(letter["RecordKey"], letter["ErrorCode"]) for letter in letters] == [
        ("3", "STRING_TOO_LONG")]
    assert len(created) == 1 + 3  # part 1 before the crash, the three parts again
    statuses = {record["External_Id__c"]: record["Status"] for record in sfsim.records("Asset")}
    assert statuses == {f"ASSET-{n}": "second" if n <= 30 else "first" for n in range(1, 61)}
