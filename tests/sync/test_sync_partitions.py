"""Runs whose pages are synced in key partitions side by side (shared/sync/partitions.py):
on real SQLite/PostgreSQL, Azurite and the Salesforce simulator, the steps driven as the
orchestration drives them, the partitions of a round on threads at once."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.crash_points import FAULT_SETTING
from shared.sql.keyset import KeyPartition, Position
from shared.sync import run_plan
from shared.sync.errors import SyncRunError
from shared.sync.job import HttpSinkSpec
from shared.sync.lock import InstanceSnapshot, TickAction, TickDecision
from shared.sync.messages import RunInput, RunOutcome
from shared.sync.pages import PageBudget, sync_pages
from shared.sync.partitions import PARTITIONS_JOIN_WRITE, join_partitions
from shared.sync.run import begin_run, end_partitioned_run, end_run
from shared.sync.starter import new_run_id
from shared.sync.state import WatermarkConflict
from shared.sync.status import job_status
from tests.sync.sources import BASE, RecordingSink, asset_job, create_asset_source

INITIAL = Position(datetime(1900, 1, 1), None)


@pytest.fixture(params=["sqlite", "postgresql"])
def assets(request):
    if request.param == "sqlite":
        return create_asset_source(request.getfixturevalue("sqlite_odbc"), "sqlite")
    return create_asset_source(
        request.getfixturevalue("postgres").odbc_connection_string, "postgresql")


def partitioned_job(assets, partitions: int = 3, **changes):
    return asset_job(assets, partitions=partitions, sink_key_follows_source_key=True,
                     partitions_setting="SYNC_ASSET_CHANGES_PARTITIONS", **changes)


def begin(job, state, run_id: str) -> RunInput:
    started = datetime.now(UTC)
    begun = begin_run(job, state, run_id, started)
    return RunInput(job.name, run_id, started, page_attempts=1, page_retry_delay=0,
                    pages_per_generation=20, pages_per_activity=2, upper_bound=begun.upper_bound,
                    partitions=job.partitions)


def round_of_partitions(job, state, sink, run: RunInput) -> RunInput:
    """One round: each unfinished partition's pages activity, side by side."""
    requests = run_plan.partition_requests(run)
    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(lambda request: sync_pages(
            job, state, sink, run.run_id, request.upper_bound,
            PageBudget(30, request.max_pages),
            partition=KeyPartition(request.partition, request.partitions)), requests))
    return run_plan.add_partition_pages(
        run, {request.partition: result for request, result in zip(requests, results, strict=True)})


def run_partitioned(job, state, sink, run_id: str | None = None) -> RunInput:
    run = begin(job, state, run_id or new_run_id())
    while run_plan.unfinished_partitions(run):
        run = round_of_partitions(job, state, sink, run)
    return run_plan.add_pages(run, end_partitioned_run(job, state, run.run_id,
                                                       run.started_at, run.partitions))


def test_partitions_deliver_every_row_once_and_the_watermark_ends_at_the_last_row(
    assets, state, salesforce_sink, sfsim
):
    # Several keys share each timestamp, negative keys among them: only (cursor, key)
    # order tells where the run ended.
    ids = [*range(-20, 0), *range(1, 181)]
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id % 7)) for asset_id in ids)
    job = partitioned_job(assets, page_size=10)
    sink = RecordingSink(salesforce_sink)

    run = run_partitioned(job, state, sink)

    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in ids)
    assert (run.totals.rows, run.totals.delivered) == (200, 200)
    # Three partitions of 66 or 67 rows, pages of 10: 7 pages each.
    assert run.totals.pages == 21
    last = max(ids, key=lambda asset_id: (asset_id % 7, asset_id))
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE + timedelta(seconds=last % 7), (last,))
    assert state.partitions.of_run(job.name, "timestamp", run.run_id) == {}
    [recorded] = [row for row in state.runs.last(job.name, 5)]
    assert (recorded["Rows"], recorded["Pages"], recorded["Outcome"]) == (200, 21, "succeeded")

    # The next run reads nothing again; a later change is read by the next run only.
    assert run_partitioned(job, state, sink).totals.rows == 0
    assert len(sink.delivered) == 200
    assets.touch(5, BASE + timedelta(seconds=30), "Retired")
    assert run_partitioned(job, state, sink).totals.rows == 1
    assert sink.delivered[200:] == ["ASSET-5"]


def test_each_partition_resumes_from_its_own_checkpoint(assets, state, salesforce_sink):
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id)) for asset_id in range(1, 61))
    job = partitioned_job(assets, partitions=2, page_size=5, checkpoint_pages=1)
    sink = RecordingSink(salesforce_sink)
    run = begin(job, state, "run-partitions")
    run = round_of_partitions(job, state, sink, run)  # two pages of each partition
    rows = state.partitions.of_run(job.name, "timestamp", "run-partitions")
    assert {index: row.position.key for index, row in rows.items()} == {0: (20,), 1: (19,)}
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == INITIAL  # not before every partition is done
    assert run.totals.rows == 20 and run.partition_progress[0].totals.rows == 10

    while run_plan.unfinished_partitions(run):
        run = round_of_partitions(job, state, sink, run)
    joined = join_partitions(job, state, run.run_id, 2)
    run = run_plan.add_pages(run, joined)

    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 61))  # once each
    assert run.totals.rows == 60
    # Joined again (its answer lost): the same answer, the watermark unmoved.
    again = join_partitions(job, state, run.run_id, 2)
    assert (again.totals, again.position) == (joined.totals, joined.position)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == \
        Position(BASE + timedelta(seconds=60), (60,))


def test_the_join_and_the_runs_end_in_one_step_again_after_a_lost_answer(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((asset_id, BASE + timedelta(seconds=asset_id))
                         for asset_id in range(1, 31))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=10,
                          min_interval=timedelta(0))
    state.lease.acquire(job.name, None, "run-once", datetime.now(UTC), timedelta(hours=2))
    run = begin(job, state, "run-once")
    while run_plan.unfinished_partitions(run):
        run = round_of_partitions(job, state, RecordingSink(salesforce_sink), run)

    ended = end_partitioned_run(job, state, run.run_id, run.started_at, 2)
    again = end_partitioned_run(job, state, run.run_id, run.started_at, 2)  # answer lost

    assert (ended.totals.rows, ended.done) == (30, True)
    assert (again.totals, again.position) == (ended.totals, ended.position)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == \
        Position(BASE + timedelta(seconds=30), (30,))
    assert state.partitions.of_run(job.name, "timestamp", run.run_id) == {}
    [recorded] = state.runs.last(job.name, 5)
    assert (recorded["Outcome"], recorded["Rows"], recorded["Pages"]) == ("succeeded", 30, 4)
    lease = state.lease.read(job.name)
    # Released: no longer held for the two hours it was taken for.
    assert lease is not None and lease.run_id == "run-once"
    assert lease.locked_until < lease.locked_at + timedelta(minutes=5)


def test_a_run_that_failed_before_the_join_leaves_the_watermark_and_counts_its_rows(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 41))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=10)
    run = round_of_partitions(job, state, salesforce_sink, begin(job, state, "run-failed"))
    end_run(job, state, "run-failed", run.started_at, RunOutcome.FAILED,
            dataclasses.replace(run.totals, rows=0), "the sink went away")

    [recorded] = state.runs.last(job.name, 5)
    assert (recorded["Outcome"], recorded["Rows"]) == ("failed", 40)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == INITIAL
    # The next run starts from the watermark: each partition from it, not from the rows
    # the failed run left.
    sink = RecordingSink(salesforce_sink)
    assert run_partitioned(job, state, sink).totals.rows == 40
    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 41))


def test_a_partition_of_a_run_that_lost_the_watermark_stops_without_writing(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5)
    old = begin(job, state, "run-old")
    begin(job, state, "run-new")
    for call in (lambda: sync_pages(job, state, salesforce_sink, "run-old", old.upper_bound,
                                    partition=KeyPartition(0, 2)),
                 lambda: join_partitions(job, state, "run-old", 2)):
        with pytest.raises(SyncRunError) as raised:
            call()
        assert raised.value.code == "RUN_SUPERSEDED"
    assert state.partitions.of_run(job.name, "timestamp", "run-old") == {}


def test_a_partition_whose_run_was_taken_over_under_way_stops_at_its_next_checkpoint(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 101))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5, checkpoint_pages=1,
                          checkpoint_interval=0.0)
    old = begin(job, state, "run-old")

    def take_over(delivered: int) -> None:
        if delivered == 10:  # the second page of the old run's partition was accepted
            begin_run(job, state, "run-new", datetime.now(UTC))

    sink = RecordingSink(salesforce_sink, after_page=take_over)
    with pytest.raises(SyncRunError) as raised:
        sync_pages(job, state, sink, "run-old", old.upper_bound, PageBudget(30, 100),
                   partition=KeyPartition(1, 2))
    assert raised.value.code == "WATERMARK_CONFLICT"
    assert len(sink.delivered) <= 3 * 5  # a page or so after the takeover, not all 50
    [row] = state.partitions.of_run(job.name, "timestamp", "run-old").values()
    assert row.position.key[0] <= 2 * 2 * 5


@pytest.mark.parametrize("column", ["Serial_Number", "Quantity"])
def test_a_key_that_is_not_an_integer_is_refused_when_the_run_begins(
    sqlite_assets, state, column
):
    job = partitioned_job(sqlite_assets, partitions=2)
    job = dataclasses.replace(job, source=dataclasses.replace(job.source,
                                                              key_columns=(column,)))
    with pytest.raises(SyncRunError) as raised:
        begin_run(job, state, "run-text", datetime.now(UTC))
    assert raised.value.code == "PARTITIONS_UNSUPPORTED"
    assert "SYNC_ASSET_CHANGES_PARTITIONS" in str(raised.value)
    assert "cast the key to bigint in the view" in str(raised.value)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).run_id is None


def test_the_key_is_checked_for_the_partitions_of_the_run_not_the_setting_now(
    sqlite_assets, state
):
    # The run's partitions were fixed when it was started (its input); the setting may
    # have changed before its begin ran: the check follows the run.
    job = partitioned_job(sqlite_assets, partitions=1)
    job = dataclasses.replace(job, source=dataclasses.replace(
        job.source, key_columns=("Quantity",)))
    with pytest.raises(SyncRunError) as raised:
        begin_run(job, state, "run-fixed", datetime.now(UTC), partitions=2)
    assert raised.value.code == "PARTITIONS_UNSUPPORTED"
    assert "SYNC_ASSET_CHANGES_PARTITIONS is 2" in str(raised.value)
    begin_run(dataclasses.replace(job, partitions=2), state, "run-one", datetime.now(UTC),
              partitions=1)  # a run in one piece needs no integer key


def test_partitions_need_one_key_column_and_a_sink_key_that_follows_it(sqlite_assets):
    job = partitioned_job(sqlite_assets, partitions=2)
    with pytest.raises(ValueError, match=r"SYNC_ASSET_CHANGES_PARTITIONS \(2\): rows are"):
        dataclasses.replace(job, source=dataclasses.replace(
            job.source, key_columns=("Asset_ID", "ChangeTimestamp")))
    with pytest.raises(ValueError, match=r"SYNC_ASSET_CHANGES_PARTITIONS \(2\): the sink"):
        dataclasses.replace(job, sink_key_follows_source_key=False)
    # A sink that writes by the source's key itself needs nothing more.
    dataclasses.replace(job, sink=HttpSinkSpec("http://127.0.0.1:1/"),
                        sink_key_follows_source_key=False)
    with pytest.raises(ValueError, match="1 to 16"):
        dataclasses.replace(job, partitions=17)


def test_the_join_moves_nothing_when_a_partition_changed_since_it_was_read(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((n, BASE + timedelta(seconds=n)) for n in range(1, 21))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5)
    run = begin(job, state, "run-raced")
    while run_plan.unfinished_partitions(run):
        run = round_of_partitions(job, state, salesforce_sink, run)
    rows = state.partitions.of_run(job.name, "timestamp", "run-raced")
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    state.partitions.write(job.name, "timestamp", rows[1], rows[1].position, rows[1].totals,
                           done=True)  # written again since `rows` were read

    with pytest.raises(WatermarkConflict):
        state.watermarks.advance(job.name, "timestamp", watermark, rows[0].position,
                                 "run-raced", run.totals, also_delete=[
                                     (row.row_key, row.etag or "") for row in rows.values()])

    # One transaction: neither the watermark moved nor a row was deleted.
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == INITIAL
    assert sorted(state.partitions.of_run(job.name, "timestamp", "run-raced")) == [0, 1]
    joined = join_partitions(job, state, "run-raced", 2)  # read afresh, it passes
    assert (joined.totals.rows, joined.position.key) == (20, "[20]")


def test_the_status_counts_the_rows_the_partitions_checkpointed(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert((n, BASE + timedelta(seconds=n)) for n in range(1, 41))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5)
    run = begin(job, state, "run-shown")
    round_of_partitions(job, state, salesforce_sink, run)  # two pages of each: 20 rows
    started = run.started_at
    body = job_status(
        job, state, InstanceSnapshot("Running", "run-shown", started),
        TickDecision(TickAction.SKIP_BUSY, "a run is under way"),
        custom_status={"started_at": started.isoformat(), "rows": 0}, schedule=None,
        now=started + timedelta(seconds=10))
    assert body["rowsPerSecond"]["current"] == 2.0  # 20 rows in 10 s
    # The setting lowered to 1 meanwhile: the run keeps its 2 partitions, the status too.
    body = job_status(
        dataclasses.replace(job, partitions=1), state,
        InstanceSnapshot("Running", "run-shown", started),
        TickDecision(TickAction.SKIP_BUSY, "a run is under way"),
        custom_status={"started_at": started.isoformat(), "rows": 0}, schedule=None,
        now=started + timedelta(seconds=10))
    assert body["rowsPerSecond"]["current"] == 2.0


def test_a_join_whose_storage_write_failed_is_retryable_and_leaves_everything_as_it_was(
    sqlite_assets, state, salesforce_sink, monkeypatch
):
    # A page's checkpoint that storage refused is tried again; so must the join be: else
    # a storage blip at the very end fails the run and the next one sends every row again.
    sqlite_assets.insert((n, BASE + timedelta(seconds=n)) for n in range(1, 21))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5)
    run = begin(job, state, "run-blip")
    while run_plan.unfinished_partitions(run):
        run = round_of_partitions(job, state, salesforce_sink, run)
    monkeypatch.setenv(FAULT_SETTING, PARTITIONS_JOIN_WRITE)

    with pytest.raises(SyncRunError) as raised:
        join_partitions(job, state, "run-blip", 2)

    assert (raised.value.code, raised.value.retryable) == ("CHECKPOINT_FAILED", True)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == INITIAL
    assert sorted(state.partitions.of_run(job.name, "timestamp", "run-blip")) == [0, 1]
    monkeypatch.delenv(FAULT_SETTING)
    joined = join_partitions(job, state, "run-blip", 2)
    assert (joined.totals.rows, joined.position.key) == (20, "[20]")


def test_a_partition_row_written_by_the_run_it_took_over_from_is_retried_not_fatal(
    sqlite_assets, state, salesforce_sink
):
    # Run "run-old" was taken over (stuck, terminated) while its partition 1 was ending:
    # its last write to the row lands after the new run read it. The new run's checkpoint
    # then finds the row changed: a retry reads it afresh (the old run writes no more),
    # where a final conflict failed the new run for nothing.
    sqlite_assets.insert((n, BASE + timedelta(seconds=n)) for n in range(1, 41))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5, checkpoint_pages=1,
                          checkpoint_interval=0.0)
    old = begin(job, state, "run-old")
    sync_pages(job, state, salesforce_sink, "run-old", old.upper_bound, PageBudget(30, 1),
               partition=KeyPartition(1, 2))
    [old_row] = state.partitions.of_run(job.name, "timestamp", "run-old").values()
    new = begin(job, state, "run-new")

    def old_run_ends_its_partition(delivered: int) -> None:
        if delivered == 5:  # the new run read the row, delivered its first page
            state.partitions.write(job.name, "timestamp", old_row, old_row.position,
                                   old_row.totals, done=True)

    sink = RecordingSink(salesforce_sink, after_page=old_run_ends_its_partition)
    with pytest.raises(SyncRunError) as raised:
        sync_pages(job, state, sink, "run-new", new.upper_bound, PageBudget(30, 100),
                   partition=KeyPartition(1, 2))
    assert raised.value.retryable, raised.value

    retried = sync_pages(job, state, sink, "run-new", new.upper_bound, PageBudget(30, 100),
                         partition=KeyPartition(1, 2))
    assert retried.done and retried.totals.rows == 20
    assert state.partitions.of_run(job.name, "timestamp", "run-new")[1].done


def test_a_partition_whose_end_is_written_after_a_late_write_of_the_old_run_is_retried(
    sqlite_assets, state, salesforce_sink
):
    # Partition 1 holds no row (even keys only): its one write is the end it reached.
    sqlite_assets.insert((n, BASE + timedelta(seconds=n)) for n in range(2, 21, 2))
    job = partitioned_job(sqlite_assets, partitions=2, page_size=5)
    old = begin(job, state, "run-old")
    sync_pages(job, state, salesforce_sink, "run-old", old.upper_bound,
               partition=KeyPartition(1, 2))
    [old_row] = state.partitions.of_run(job.name, "timestamp", "run-old").values()
    new = begin(job, state, "run-new")
    late = []

    def clock() -> float:  # first asked once the new run read the row
        if not late:
            late.append(state.partitions.write(job.name, "timestamp", old_row,
                                               old_row.position, old_row.totals, done=True))
        return time.monotonic()

    with pytest.raises(SyncRunError) as raised:
        sync_pages(job, state, salesforce_sink, "run-new", new.upper_bound,
                   partition=KeyPartition(1, 2), clock=clock)
    assert (raised.value.code, raised.value.retryable) == ("PARTITION_CONFLICT", True)
    assert sync_pages(job, state, salesforce_sink, "run-new", new.upper_bound,
                      partition=KeyPartition(1, 2)).done


@pytest.mark.parametrize(("key_type", "accepted"), [
    ("BIGINT", True), ("NUMERIC(18,0)", True), ("NUMERIC", False), ("NUMERIC(12,2)", False)])
def test_a_postgresql_key_of_scale_0_is_accepted_when_the_run_begins(
    postgres_assets, state, key_type, accepted
):
    view = f"keyed_{uuid.uuid4().hex[:8]}"
    with postgres_assets.connect() as connection:
        connection.execute(f'CREATE VIEW {view} AS SELECT CAST("Asset_ID" AS {key_type}) '
                           'AS "Asset_ID", "ChangeTimestamp", "Asset_Name", "Serial_Number", '
                           '"Status", "Quantity", "Price", "Install_Date", "Contact_Email" '
                           f"FROM {postgres_assets.table}")
    job = partitioned_job(dataclasses.replace(postgres_assets, view=view), partitions=2)
    if accepted:
        assert begin_run(job, state, "run-keyed", datetime.now(UTC)).failure is None
        return
    with pytest.raises(SyncRunError) as raised:
        begin_run(job, state, "run-keyed", datetime.now(UTC))
    assert raised.value.code == "PARTITIONS_UNSUPPORTED"
