"""Rows with a NULL key or a NULL cursor (shared/sync/null_rows.py): on real SQLite and
PostgreSQL, Azurite and the Salesforce simulator, a run never fails on them, never sends
them as records, and dead-letters each one once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyodbc
import pytest

from shared.sql.keyset import Position, UpperBound
from shared.sync.backlog_finish import finish_backlog
from shared.sync.job import SalesforceSinkSpec, SourceSpec, SyncJob
from shared.sync.null_rows import NULL_CURSOR, NULL_KEY, find_null_rows
from shared.sync.state import Watermark
from shared.sync.state.watermarks import NullRowsReported
from tests.sync.drive import run_once
from tests.sync.sources import BASE, RecordingSink, asset_job, create_asset_source
from tests.sync.test_sync_backlog_steps import begin_backlog_run, load
from tests.sync.test_sync_partitions import partitioned_job, run_partitioned

INITIAL = Position(datetime(1900, 1, 1), None)
VIEW_SETTING = "SYNC_ASSET_CHANGES_SOURCE_VIEW"


@pytest.fixture(params=["sqlite", "postgresql"])
def assets(request):
    """The seed's view over a table whose key and cursor may be NULL (an outer join)."""
    if request.param == "sqlite":
        return create_asset_source(request.getfixturevalue("sqlite_odbc"), "sqlite",
                                   nullable=True)
    return create_asset_source(request.getfixturevalue("postgres").odbc_connection_string,
                               "postgresql", nullable=True)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def letters_of(state, job) -> list[dict]:
    return sorted(state.dead_letters.rows(job.name),
                  key=lambda row: (row["ErrorCode"], row["Cursor"], row["RowKey"]))


def test_a_null_key_ending_a_page_is_dead_lettered_and_the_run_goes_on(
    assets, state, salesforce_sink, sfsim
):
    # Distinct stamps: the NULL-key row would be the third row, the last of the first page,
    # wherever a dialect sorts NULL; its position could not be checkpointed.
    assets.insert([(1, at(0)), (2, at(1)), (None, at(2)), (3, at(3)), (4, at(4))])
    job = asset_job(assets, page_size=3, view_setting=VIEW_SETTING)
    sink = RecordingSink(salesforce_sink)

    run = run_once(job, state, sink)

    assert sink.delivered == ["ASSET-1", "ASSET-2", "ASSET-3", "ASSET-4"]
    assert sorted(record["External_Id__c"] for record in sfsim.records("Asset")) == [
        "ASSET-1", "ASSET-2", "ASSET-3", "ASSET-4"]
    assert (run.totals.rows, run.totals.delivered, run.totals.dead_lettered) == (4, 4, 1)
    [letter] = letters_of(state, job)
    assert (letter["ErrorCode"], letter["RecordKey"], letter["Cursor"]) == (
        NULL_KEY, "NULL", at(2).isoformat())
    assert "Asset_ID" in letter["ErrorMessage"] and VIEW_SETTING in letter["ErrorMessage"]
    assert assets.view in letter["ErrorMessage"]
    assert "owner" not in letter["Record"]  # masked as a record would be
    assert letter["RunId"] == run.run_id
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        at(4), (4,))
    [recorded] = state.runs.last(job.name, 5)
    assert (recorded["Outcome"], recorded["DeadLettered"]) == ("succeeded", 1)

    # The next run neither reads it nor reports it again.
    again = run_once(job, state, sink)
    assert (again.totals.rows, again.totals.dead_lettered) == (0, 0)
    assert len(letters_of(state, job)) == 1 and len(sink.delivered) == 4


def test_null_keys_among_rows_of_one_stamp_are_neither_read_twice_nor_skipping_any(
    assets, state, salesforce_sink
):
    # SQLite sorts NULL first, PostgreSQL last: with a NULL key inside a group of one stamp
    # and pages of one row, a page ending next to it must not lose or repeat a neighbour.
    # Two NULL-key rows alike in every value are two dead letters.
    assets.insert([(1, at(0)), (None, at(0)), (2, at(0)), (None, at(1)), (None, at(1)),
                   (3, at(1)), (None, at(2))])
    job = asset_job(assets, page_size=1)
    sink = RecordingSink(salesforce_sink)

    run = run_once(job, state, sink)

    assert sink.delivered == ["ASSET-1", "ASSET-2", "ASSET-3"]
    assert (run.totals.rows, run.totals.dead_lettered) == (3, 4)
    letters = letters_of(state, job)
    assert [(row["ErrorCode"], row["Cursor"]) for row in letters] == [
        (NULL_KEY, at(0).isoformat()), (NULL_KEY, at(1).isoformat()),
        (NULL_KEY, at(1).isoformat()), (NULL_KEY, at(2).isoformat())]
    assert run_once(job, state, sink).totals.dead_lettered == 0
    assert len(letters_of(state, job)) == 4


def test_a_null_key_after_the_last_row_is_reported_by_the_run_whose_window_it_entered_only(
    assets, state, salesforce_sink
):
    # The watermark stays at row 1, before the NULL-key row: the windows of later runs
    # start after what the first one checked, not at the watermark.
    assets.insert([(1, at(0)), (None, at(5))])
    job = asset_job(assets)
    sink = RecordingSink(salesforce_sink)

    first = run_once(job, state, sink)
    second = run_once(job, state, sink)
    # Stamped after the second run's bound (the database's clock then), before the third's.
    now = datetime.now(UTC).replace(tzinfo=None)
    later = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the column keeps it
    assets.insert([(None, later)])
    third = run_once(job, state, sink)

    assert [run.totals.dead_lettered for run in (first, second, third)] == [1, 0, 1]
    assert [row["Cursor"] for row in letters_of(state, job)] == [
        at(5).isoformat(), later.isoformat()]
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        at(0), (1,))
    assert sink.delivered == ["ASSET-1"]


def test_a_null_cursor_is_dead_lettered_once_and_synced_once_it_has_a_value(
    assets, state, salesforce_sink
):
    assets.insert([(1, at(0)), (5, None), (None, None)])
    job = asset_job(assets, view_setting=VIEW_SETTING)
    sink = RecordingSink(salesforce_sink)

    first = run_once(job, state, sink)

    assert sink.delivered == ["ASSET-1"]
    assert (first.totals.rows, first.totals.dead_lettered) == (1, 2)
    letters = letters_of(state, job)
    assert [(row["ErrorCode"], row["RecordKey"], row["Cursor"]) for row in letters] == [
        (NULL_CURSOR, "5", ""), (NULL_CURSOR, "NULL", "")]
    assert all("ChangeTimestamp" in row["ErrorMessage"] and VIEW_SETTING in row["ErrorMessage"]
               for row in letters)
    assert run_once(job, state, sink).totals.dead_lettered == 0  # not reported again

    assets.touch(5, at(10), "Repaired")
    third = run_once(job, state, sink)
    assert sink.delivered == ["ASSET-1", "ASSET-5"]
    assert (third.totals.rows, third.totals.dead_lettered) == (1, 0)

    with assets.connect() as connection:  # the cursor goes back to NULL: a new report
        connection.execute(f'UPDATE {assets.table} SET "ChangeTimestamp" = NULL '
                           'WHERE "Asset_ID" = 5')
    assert run_once(job, state, sink).totals.dead_lettered == 1
    assert len(letters_of(state, job)) == 2  # the same row of the table, written again


def test_partitions_read_no_null_key_and_the_run_reports_each_once(
    assets, state, salesforce_sink
):
    assets.insert([(1, at(0)), (None, at(1)), (2, at(2)), (3, at(3)), (None, at(4)),
                   (4, at(5))])
    job = partitioned_job(assets, partitions=2, page_size=1)
    sink = RecordingSink(salesforce_sink)

    run = run_partitioned(job, state, sink)

    assert sorted(sink.delivered) == ["ASSET-1", "ASSET-2", "ASSET-3", "ASSET-4"]
    assert (run.totals.rows, run.totals.dead_lettered) == (4, 2)
    assert [row["ErrorCode"] for row in letters_of(state, job)] == [NULL_KEY, NULL_KEY]
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        at(5), (4,))


@pytest.fixture(params=["sqlite-version", "postgresql-xid"])
def versioned(request):
    """A table keyed by `id` with a bigint cursor: a version (SQLite, one writer) or the
    writing transaction's id (PostgreSQL); either may be NULL."""
    table = f"versioned_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite-version":
        connection_string, kind = request.getfixturevalue("sqlite_odbc"), "version"
        cursor = "ver BIGINT"
    else:
        connection_string = request.getfixturevalue("postgres").odbc_connection_string
        kind = "xid"
        cursor = "ver BIGINT DEFAULT CAST(CAST(pg_current_xact_id() AS text) AS bigint)"
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (id INTEGER, {cursor}, name VARCHAR(40))")
        connection.execute(f"CREATE INDEX ix_{table} ON {table} (ver, id)")
    return connection_string, kind, table


def versioned_rows(versioned, rows) -> None:
    """(id, version): a version of None is NULL; "next" the next version (SQLite) or the
    transaction's id (PostgreSQL), one transaction a row."""
    connection_string, kind, table = versioned
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        for row_id, version in rows:
            if version == "next" and kind == "xid":
                connection.execute(f"INSERT INTO {table} (id, name) VALUES (?, ?)",
                                   row_id, f"row {row_id}")
                continue
            if version == "next":
                version = connection.execute(
                    f"SELECT COALESCE(MAX(ver), 0) + 1 FROM {table}").fetchval()
            connection.execute(f"INSERT INTO {table} (id, ver, name) VALUES (?, ?, ?)",
                               row_id, version, f"row {row_id}")


def versioned_job(versioned) -> SyncJob:
    connection_string, kind, table = versioned
    return SyncJob(
        name="versioned", source=SourceSpec(
            connection_string=connection_string, relation=table, cursor_column="ver",
            cursor_kind=kind, key_columns=("id",), columns=("id", "ver", "name"),
            initial_cursor=0, dialect="sqlite" if kind == "version" else "postgresql",
            login_timeout=3),
        map_record=lambda row: {"External_Id__c": f"V-{row['id']}", "Name": row["name"]},
        sink=SalesforceSinkSpec("Asset", "External_Id__c"),
        schedule_setting="SYNC_VERSIONED_SCHEDULE", page_size=2,
        max_run_time=timedelta(minutes=5), min_interval=timedelta(0))


def test_a_version_or_xid_cursor_keeps_its_bound_and_reports_null_rows_once(
    versioned, state, salesforce_sink
):
    versioned_rows(versioned, [(1, "next"), (None, "next"), (2, "next"), (3, None)])
    job = versioned_job(versioned)
    sink = RecordingSink(salesforce_sink)

    first = run_once(job, state, sink)
    versioned_rows(versioned, [(4, "next"), (None, "next")])
    second = run_once(job, state, sink)
    third = run_once(job, state, sink)

    assert sink.delivered == ["V-1", "V-2", "V-4"]
    assert [(run.totals.rows, run.totals.dead_lettered) for run in (first, second, third)] \
        == [(2, 2), (1, 1), (0, 0)]
    assert sorted(row["ErrorCode"] for row in letters_of(state, job)) == [
        NULL_CURSOR, NULL_KEY, NULL_KEY]
    assert state.watermarks.read(job.name, job.source.cursor_kind,
                                 job.source.initial_position).position.key == (4,)


def test_a_backlog_loads_no_null_key_and_counts_the_rows_its_begin_reported(
    sqlite_odbc, state, azurite, client, sfsim
):
    assets = create_asset_source(sqlite_odbc, "sqlite", nullable=True)
    assets.insert([*((asset_id, at(asset_id)) for asset_id in range(1, 21)),
                   (None, at(5.5)), (None, at(20)), (7, None)])
    job = asset_job(assets, page_size=4, backlog_threshold=5)
    begun, store = begin_backlog_run(job, state, azurite)
    assert begun.backlog  # 20 rows with a key wait: the NULL-key rows are not counted

    staged, jobs = load(job, state, store, client, "run-1", begun.upper_bound)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert staged.rows == 20 and staged.dead_lettered == 0
    stored = sorted(record["External_Id__c"] for record in sfsim.records("Asset"))
    assert stored == sorted(f"ASSET-{n}" for n in range(1, 21))
    assert (finished.totals.rows, finished.totals.dead_lettered) == (20, 3)
    assert [row["ErrorCode"] for row in letters_of(state, job)] == [
        NULL_CURSOR, NULL_KEY, NULL_KEY]
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        at(20), (20,))


def test_null_keys_past_what_one_run_reports_are_left_to_the_next_run(assets):
    assets.insert([(None, at(1)), (None, at(1)), (None, at(2)), (None, at(3)),
                   (None, at(4)), (None, at(4)), (None, at(4))])
    job = asset_job(assets)
    source = job.source.sql_source()
    bound = UpperBound(at(10), True)

    def reported(earlier: NullRowsReported, limit: int = 2) -> tuple[list, NullRowsReported]:
        found = find_null_rows(job, source, "run-1",
                               Watermark(INITIAL, None, None, None, null_rows=earlier),
                               bound, limit)
        return [letter.cursor for letter in found.letters], found.reported

    first, after_first = reported(NullRowsReported())
    second, after_second = reported(after_first)
    third, after_third = reported(after_second)  # three rows share at(4): two of them
    fourth, _ = reported(after_third)

    assert first == [at(1).isoformat()] * 2
    assert second == [at(2).isoformat(), at(3).isoformat()]
    assert third == [at(4).isoformat()] * 2
    assert fourth == []
