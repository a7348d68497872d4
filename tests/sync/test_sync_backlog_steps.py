"""The backlog steps (shared/sync/backlog_staging.py, backlog_finish.py) driven directly:
real SQLite, Azurite blobs and tables, the simulator's Bulk API."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from shared.bulkload.jobs import poll_jobs
from shared.sql.keyset import Position
from shared.sync.asset_changes import asset_record
from shared.sync.backlog import backlog_store
from shared.sync.backlog_finish import finish_backlog
from shared.sync.backlog_staging import stage_backlog
from shared.sync.errors import SyncRunError
from shared.sync.messages import BacklogStop
from shared.sync.run import begin_run
from tests.sync.sources import BASE, asset_job, create_asset_source

INITIAL = Position(datetime(1900, 1, 1))


def begin_backlog_run(job, state, azurite):
    """Run "run-1" begun, and its backlog's store in a container of its own."""
    begun = begin_run(job, state, "run-1", datetime.now(UTC))
    store = backlog_store(BlobServiceClient.from_connection_string(azurite.connection_string),
                          "backlog-" + uuid.uuid4().hex[:8], job.name, "run-1")
    return begun, store


def load(job, state, store, client, run_id, bound, **parts):
    staged = stage_backlog(job, state, store, client, run_id, bound,
                           **(parts or {"max_part_bytes": 4000}))
    return staged, ended_jobs(client, staged)


def ended_jobs(client, staged):
    jobs = list(staged.jobs)
    deadline = time.monotonic() + 30
    while not all(snapshot.ended for snapshot in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
        jobs = poll_jobs(client, [snapshot.id for snapshot in jobs])
    return jobs


def test_parts_are_loaded_once_and_a_repeated_finish_changes_nothing(
    sqlite_assets, state, azurite, client, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 101))
    job = asset_job(sqlite_assets, page_size=30, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)
    assert begun.backlog

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    assert len(jobs) > 1 and staged.rows == 100  # split below the part size
    assert staged.parts == ()  # submitted while staging, nothing left to submit
    assert sum(snapshot.processed for snapshot in jobs) == 100
    first = finish_backlog(job, state, store, client, "run-1", staged, jobs)
    again = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert (first.totals.rows, first.totals.delivered, first.totals.pages) == (
        100, 100, len(jobs))
    assert again.totals == first.totals
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        BASE, (100,))
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 100 and len(set(stored)) == 100


def test_a_job_that_failed_as_a_whole_leaves_the_watermark_for_the_next_run(
    sqlite_assets, state, azurite, client, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 41))
    job = asset_job(sqlite_assets, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)
    sfsim.configure(fail_next_jobs=1)

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    with pytest.raises(SyncRunError) as caught:
        finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert caught.value.code == "BULK_JOB_FAILED" and "Failed" in str(caught.value)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == INITIAL


def test_parts_are_cut_at_the_part_rows_each_loaded_by_its_own_job(
    sqlite_assets, state, azurite, client, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 96))
    job = asset_job(sqlite_assets, page_size=20, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)
    sfsim.clear_requests_log()

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound, part_rows=30)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert [snapshot.processed for snapshot in jobs] == [30, 30, 30, 5]
    uploads = [entry for entry in sfsim.requests_log()
               if entry["method"] == "PUT" and entry["path"].endswith("/batches")]
    assert len(uploads) == 4
    assert (finished.totals.rows, finished.totals.delivered, finished.totals.pages) == (
        95, 95, 4)
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 95 and len(set(stored)) == 95


def test_two_changes_of_one_record_in_two_parts_leave_the_later_one(
    sqlite_odbc, state, azurite, client, sfsim
):
    """Parts are jobs Salesforce runs side by side: a stage stops before a record's second
    change, which the next round (or the pages) writes after the jobs of this one ended.
    Staged together, the earlier change, in the first job's second internal batch (which
    Salesforce reached a second after the first), was written after the later one."""
    changes = create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)
    changes.insert(((n, BASE) for n in range(2, 10_002)), "filler")
    changes.insert([(1, BASE + timedelta(hours=1))], "older")
    changes.insert([(1, BASE + timedelta(hours=2))], "newer")
    job = asset_job(changes, page_size=5000, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)
    sfsim.configure(internal_batch_seconds=1.0)

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound,
                        part_rows=10_001)
    first = finish_backlog(job, state, store, client, "run-1", staged, jobs)
    assert staged.stopped is BacklogStop.NEXT_ROUND  # more rows than the threshold
    assert [snapshot.processed for snapshot in jobs] == [10_001]
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        BASE + timedelta(hours=1), (1,))
    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert staged.stopped is BacklogStop.BOUND and staged.rows == 1
    assert (first.totals.rows, finished.totals.rows, finished.totals.delivered) == (
        10_001, 10_002, 10_002)
    [record] = [record for record in sfsim.records("Asset")
                if record["External_Id__c"] == "ASSET-1"]
    assert record["Status"] == "newer"


def test_a_stage_stops_after_its_round_of_records_and_the_next_goes_on_from_there(
    sqlite_assets, state, azurite, client, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 26))
    job = asset_job(sqlite_assets, page_size=10, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)

    rounds = []
    while not rounds or rounds[-1] is not BacklogStop.BOUND:
        staged = stage_backlog(job, state, store, client, "run-1", begun.upper_bound,
                               round_records=10)
        finished = finish_backlog(job, state, store, client, "run-1", staged,
                                  ended_jobs(client, staged))
        rounds.append(staged.stopped)

    assert rounds == [BacklogStop.NEXT_ROUND, BacklogStop.NEXT_ROUND, BacklogStop.BOUND]
    assert (finished.totals.rows, finished.totals.delivered) == (25, 25)
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 25 and len(set(stored)) == 25


def test_records_rejected_under_one_external_id_are_each_counted_and_dead_lettered(
    sqlite_assets, state, azurite, client, sfsim
):
    """Salesforce answers failed records by their values: the even assets, mapped without
    an external id, are ten rejections (not one), each dead-lettered with its own values."""
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))

    def without_even_ids(row):
        record = asset_record(row)
        return {**record, "External_Id__c": None if row["Asset_ID"] % 2 == 0
                else record["External_Id__c"]}

    job = asset_job(sqlite_assets, backlog_threshold=10, map_record=without_even_ids)
    begun, store = begin_backlog_run(job, state, azurite)

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert (finished.totals.rows, finished.totals.delivered,
            finished.totals.dead_lettered) == (20, 10, 10)
    letters = {row["RecordKey"]: (row["ErrorCode"], json.loads(row["Record"])["Name"])
               for row in state.dead_letters.rows(job.name)}
    assert letters == {str(n): ("MISSING_ARGUMENT", f"Asset {n}") for n in range(2, 21, 2)}


def test_a_value_that_is_the_text_null_marker_is_dead_lettered_not_cleared(
    sqlite_assets, state, azurite, client, sfsim
):
    """Bulk API 2.0 reads the text #N/A as null and cannot escape it: sent, asset 3's
    serial number would be cleared in Salesforce and the row counted delivered."""
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))
    with sqlite_assets.connect() as connection:
        connection.execute(f'UPDATE {sqlite_assets.table} SET "Serial_Number" = ? '
                           'WHERE "Asset_ID" = 3', "#N/A")
    job = asset_job(sqlite_assets, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert (finished.totals.rows, finished.totals.delivered,
            finished.totals.dead_lettered) == (20, 19, 1)
    [letter] = state.dead_letters.rows(job.name)
    assert (letter["RecordKey"], letter["ErrorCode"]) == ("3", "NULL_MARKER_TEXT")
    stored = {record["External_Id__c"] for record in sfsim.records("Asset")}
    assert "ASSET-3" not in stored and len(stored) == 19


def test_a_null_in_the_source_clears_the_field_as_the_pages_do(
    sqlite_assets, state, azurite, client, sfsim
):
    """A page's null clears the field (sObject Collections JSON); an empty CSV value leaves
    it as it was, so a backlog sent nulls as #N/A, or Salesforce kept the value the source
    had cleared while the row counted delivered."""
    sfsim.insert_records("Asset", [
        {"External_Id__c": f"ASSET-{n}", "Name": f"Asset {n}", "SerialNumber": "SN-OLD"}
        for n in (3, 4)])
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))
    with sqlite_assets.connect() as connection:
        connection.execute(f'UPDATE {sqlite_assets.table} SET "Serial_Number" = NULL '
                           'WHERE "Asset_ID" = 3')
        # Salesforce keeps no empty text: the empty string clears the field too.
        connection.execute(f'UPDATE {sqlite_assets.table} SET "Serial_Number" = ? '
                           'WHERE "Asset_ID" = 4', "")
    job = asset_job(sqlite_assets, backlog_threshold=10)
    begun, store = begin_backlog_run(job, state, azurite)

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert (finished.totals.rows, finished.totals.delivered) == (20, 20)
    serials = {record["External_Id__c"]: record["SerialNumber"]
               for record in sfsim.records("Asset")}
    assert serials["ASSET-3"] is None and serials["ASSET-4"] is None
    assert serials["ASSET-5"] == "SN-00000005"
