"""Backlog mode end to end on the local host: a run that finds more changed rows than the
job's threshold loads them with Bulk API 2.0 upsert jobs on the simulator, dead-letters
what Salesforce rejected and only then advances the watermark."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.salesforce import SalesforceClient
from shared.sql.keyset import Position
from shared.sync.state import SyncState
from tests.salesforce.client_setup import credentials_for
from tests.sync.local_host import JOB, SyncHost, run_ended
from tests.sync.sources import BASE, AssetSource, create_asset_source

INITIAL = Position(datetime(1900, 1, 1))


def state_of(sync_host: SyncHost) -> SyncState:
    return SyncState(TableServiceClient.from_connection_string(
        sync_host.env["AzureWebJobsStorage"]), sync_host.env["SYNC_WATERMARK_TABLE"],
        sync_host.env["SYNC_RUNS_TABLE"], sync_host.env["SYNC_DEAD_LETTER_TABLE"])


def paths_called(sfsim) -> list[str]:
    return [f"{entry['method']} {entry['path']}" for entry in sfsim.requests_log()]


def restart_in_backlog_mode(sync_host: SyncHost, threshold: int, **settings: str) -> None:
    """The host again with a backlog threshold, fast polls and a container of its own."""
    sync_host.host.stop()
    sync_host.env.update(SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD=str(threshold),
                         SYNC_BACKLOG_POLL_INTERVAL="0.2",
                         SYNC_BACKLOG_CONTAINER="backlog-" + uuid.uuid4().hex[:10], **settings)
    sync_host.restart()


def assets_1_to_30_changed_twice(sqlite_odbc: str) -> AssetSource:
    """Assets 1-30 changed to 'first', then to 'second'; assets 31-60 changed once."""
    changes = create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)
    changes.insert(((n, BASE + timedelta(seconds=n)) for n in range(1, 31)), "first")
    changes.insert(((n, BASE + timedelta(seconds=100 + n)) for n in range(1, 31)), "second")
    changes.insert(((n, BASE + timedelta(seconds=200 + n)) for n in range(31, 61)), "first")
    return changes


def test_a_backlog_above_the_threshold_is_loaded_with_bulk_api_jobs(
    sync_host: SyncHost, sqlite_assets: AssetSource, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 121))
    with sqlite_assets.connect() as connection:  # SQLite keeps it; Salesforce refuses it
        connection.execute(f'UPDATE {sqlite_assets.table} SET "Serial_Number" = ? '
                           'WHERE "Asset_ID" = 7', "S" * 100)
    restart_in_backlog_mode(sync_host, 50)
    sfsim.clear_requests_log()

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended, timeout=90)

    assert body["lock"]["runtimeStatus"] == "Completed", body
    run = body["lastRuns"][0]
    assert (run["outcome"], run["mode"], run["rows"], run["delivered"], run["deadLettered"]) \
        == ("succeeded", "bulk", 120, 119, 1)
    assert body["rowsPerSecond"] == {"current": None, "last": run["rowsPerSecond"]}
    assert run["rowsPerSecond"] > 0
    calls = paths_called(sfsim)
    assert any(call.startswith("POST ") and call.endswith("/jobs/ingest") for call in calls)
    assert not any("/composite/sobjects/" in call for call in calls)
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 119 and len(set(stored)) == 119 and "ASSET-7" not in stored
    state = state_of(sync_host)
    letters = state.dead_letters.rows(JOB)
    assert [(letter["RecordKey"], letter["ErrorCode"]) for letter in letters] == [
        ("7", "STRING_TOO_LONG")]
    watermark = state.watermarks.read(JOB, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (120,))
    container = sync_host.env["SYNC_BACKLOG_CONTAINER"]
    blobs = BlobServiceClient.from_connection_string(sync_host.env["AzureWebJobsStorage"]) \
        .get_container_client(container).list_blobs()
    assert [blob.name for blob in blobs] == []  # the staged CSV was removed

    # Below the threshold the next run pages through sObject Collections as before.
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(121, 126))
    sfsim.clear_requests_log()
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(lambda body: run_ended(body) and len(body["lastRuns"]) == 2
                              and body["lastRuns"][0]["outcome"] != "running")
    run = body["lastRuns"][0]
    assert (run["outcome"], run["mode"], run["rows"]) == ("succeeded", "pages", 5)
    assert any("/composite/sobjects/" in call for call in paths_called(sfsim))
    assert len({record["External_Id__c"] for record in sfsim.records("Asset")}) == 124


def test_a_backlog_with_two_changes_of_a_record_leaves_the_second_to_the_pages(
    sync_host: SyncHost, sqlite_odbc: str, sfsim
):
    """The parts' jobs run side by side in Salesforce: the stage stops before a record's
    second change, and with fewer rows than the threshold staged the run writes the rest
    by pages once the jobs ended."""
    changes = assets_1_to_30_changed_twice(sqlite_odbc)
    restart_in_backlog_mode(sync_host, 50, SYNC_ASSET_CHANGES_SOURCE_VIEW=changes.view)
    sfsim.clear_requests_log()

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended, timeout=90)

    assert body["lock"]["runtimeStatus"] == "Completed", body
    run = body["lastRuns"][0]
    assert (run["outcome"], run["rows"], run["delivered"], run["deadLettered"]) == (
        "succeeded", 90, 90, 0)
    calls = paths_called(sfsim)
    assert any(call.startswith("POST ") and call.endswith("/jobs/ingest") for call in calls)
    assert any("/composite/sobjects/" in call for call in calls)
    statuses = {record["External_Id__c"]: record["Status"] for record in sfsim.records("Asset")}
    assert statuses == {f"ASSET-{n}": "second" if n <= 30 else "first" for n in range(1, 61)}
    watermark = state_of(sync_host).watermarks.read(JOB, "timestamp", INITIAL)
    assert watermark.position == Position(BASE + timedelta(seconds=260), (60,))


def test_a_backlog_stopped_after_a_rounds_worth_of_rows_goes_on_in_another_round(
    sync_host: SyncHost, sqlite_odbc: str, sfsim
):
    changes = create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)
    changes.insert(((n, BASE + timedelta(seconds=n)) for n in range(1, 31)), "first")
    changes.insert(((n, BASE + timedelta(seconds=100 + n)) for n in range(1, 6)), "second")
    restart_in_backlog_mode(sync_host, 20, SYNC_ASSET_CHANGES_SOURCE_VIEW=changes.view)
    sfsim.clear_requests_log()

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended, timeout=90)

    run = body["lastRuns"][0]
    assert (run["outcome"], run["mode"], run["rows"], run["delivered"]) == (
        "succeeded", "bulk", 35, 35)
    calls = paths_called(sfsim)
    assert sum(call.startswith("POST ") and call.endswith("/jobs/ingest")
               for call in calls) == 2
    assert not any("/composite/sobjects/" in call for call in calls)
    statuses = {record["External_Id__c"]: record["Status"] for record in sfsim.records("Asset")}
    assert statuses == {f"ASSET-{n}": "second" if n <= 5 else "first" for n in range(1, 31)}


def test_the_run_after_one_that_failed_on_poll_errors_waits_for_its_jobs(
    sync_host: SyncHost, sqlite_odbc: str, sfsim
):
    """The first run's jobs (the first changes of assets 1-30) are queued when Salesforce
    stops answering: the run fails with the watermark untouched. The next run sends the
    rows again and writes the second changes by pages: not before the first run's jobs
    ended, or those write the first changes last."""
    changes = assets_1_to_30_changed_twice(sqlite_odbc)
    restart_in_backlog_mode(sync_host, 50, SYNC_ASSET_CHANGES_SOURCE_VIEW=changes.view,
                            SYNC_BACKLOG_PART_ROWS="10", SYNC_PAGE_ATTEMPTS="2",
                            SALESFORCE_MAX_RETRIES="1")
    sfsim.configure(job_delay_seconds=30)  # set back once the run failed

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    sync_host.wait_for(lambda body: (body["progress"] or {}).get("phase")
                       == "waiting for Bulk API jobs")
    sfsim.configure(error_rate_5xx=1.0)
    body = sync_host.wait_for(run_ended, timeout=90)
    assert body["lastRuns"][0]["outcome"] == "failed", body
    sfsim.configure(error_rate_5xx=0.0, job_delay_seconds=0.2)

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(lambda body: run_ended(body) and len(body["lastRuns"]) == 2
                              and body["lastRuns"][0]["outcome"] != "running", timeout=120)
    with SalesforceClient(credentials_for(sfsim)) as client:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(
                job.state in ("JobComplete", "Failed", "Aborted") for job in client.list_jobs()):
            time.sleep(0.5)

    run = body["lastRuns"][0]
    assert (run["outcome"], run["rows"], run["delivered"], run["deadLettered"]) == (
        "succeeded", 90, 90, 0)
    statuses = {record["External_Id__c"]: record["Status"] for record in sfsim.records("Asset")}
    assert statuses == {f"ASSET-{n}": "second" if n <= 30 else "first" for n in range(1, 61)}
