"""Whole runs on real SQLite/PostgreSQL, Azurite and the Salesforce simulator."""

from __future__ import annotations

import collections
import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pyodbc
import pytest

from shared.sql.keyset import Position
from shared.sync.asset_changes import asset_record
from shared.sync.errors import SyncRunError
from shared.sync.job import SalesforceSinkSpec, SourceSpec, SyncJob
from shared.sync.pages import PageBudget, sync_pages
from shared.sync.run import begin_run
from shared.sync.sinks import SalesforceSink, SinkUnavailable
from tests.sync.drive import run_once
from tests.sync.sources import BASE, RecordingSink, asset_job, create_asset_source

INITIAL = Position(datetime(1900, 1, 1), None)


def asset_ids(sim) -> list[str]:
    return [record["External_Id__c"] for record in sim.records("Asset")]


@pytest.fixture(params=["sqlite", "postgresql"])
def assets(request):
    if request.param == "sqlite":
        return create_asset_source(request.getfixturevalue("sqlite_odbc"), "sqlite")
    return create_asset_source(
        request.getfixturevalue("postgres").odbc_connection_string, "postgresql"
    )


def test_thousand_rows_sharing_one_timestamp_are_delivered_exactly_once(
    assets, state, salesforce_sink, sfsim
):
    assets.insert((asset_id, BASE) for asset_id in range(1, 1001))
    job = asset_job(assets, page_size=100)
    sink = RecordingSink(salesforce_sink)

    run = run_once(job, state, sink)

    assert (run.totals.rows, run.totals.pages, run.totals.delivered) == (1000, 10, 1000)
    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 1001))
    stored = asset_ids(sfsim)
    assert len(stored) == 1000 and len(set(stored)) == 1000
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (1000,))
    # Nothing new: the next run reads nothing and sends nothing.
    assert run_once(job, state, sink).totals.rows == 0
    assert len(sink.delivered) == 1000


def test_masked_fields_are_masked_before_mapping(sqlite_assets, state, salesforce_sink):
    sqlite_assets.insert([(1, BASE)])
    seen = []
    job = asset_job(sqlite_assets, map_record=lambda row: seen.append(row) or {
        "External_Id__c": f"ASSET-{row['Asset_ID']}", "Name": row["Asset_Name"]})
    run_once(job, state, salesforce_sink)
    assert seen[0]["Contact_Email"] == "**************.com"


def test_rows_inserted_while_a_run_is_under_way_go_to_the_next_run(
    assets, state, salesforce_sink, sfsim
):
    sqlite_assets = assets
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 301))
    late = iter(range(1001, 1051))

    def insert_during_run(delivered: int) -> None:
        if delivered == 100:  # after the first page the sink accepted
            now = datetime.now(UTC).replace(tzinfo=None) + timedelta(milliseconds=5)
            sqlite_assets.insert((asset_id, now) for asset_id in late)

    sink = RecordingSink(salesforce_sink, after_page=insert_during_run)
    job = asset_job(sqlite_assets, page_size=100)

    first = run_once(job, state, sink)
    second = run_once(job, state, sink)

    assert first.totals.rows == 300 and second.totals.rows == 50
    stored = asset_ids(sfsim)
    assert len(stored) == 350 and len(set(stored)) == 350
    assert collections.Counter(sink.delivered).most_common(1)[0][1] == 1


def test_per_record_failures_are_dead_lettered_and_do_not_block_the_watermark(
    sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert(
        (asset_id, BASE + timedelta(seconds=asset_id)) for asset_id in range(1, 31)
    )

    def map_or_fail(row):
        if row["Asset_ID"] == 7:
            raise ValueError("price in an unknown currency")
        record = asset_record(row)
        if row["Asset_ID"] % 10 == 0:
            record["Name"] = None  # Salesforce answers REQUIRED_FIELD_MISSING
        return record

    job = asset_job(sqlite_assets, page_size=8, map_record=map_or_fail)
    run = run_once(job, state, salesforce_sink)

    assert run.totals.rows == 30 and run.totals.dead_lettered == 4 and run.totals.delivered == 26
    letters = {row["RecordKey"]: row for row in state.dead_letters.rows(job.name)}
    assert sorted(letters) == ["10", "20", "30", "7"]
    assert letters["7"]["ErrorCode"] == "MAPPING_FAILED"
    assert "unknown currency" in letters["7"]["ErrorMessage"]
    assert letters["10"]["ErrorCode"] == "REQUIRED_FIELD_MISSING"
    assert "owner10@" not in letters["10"]["Record"]
    assert len(asset_ids(sfsim)) == 26
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position.key == (30,)


@pytest.mark.parametrize("failure", [503, 403])
def test_a_whole_call_failure_fails_the_page_and_leaves_the_watermark(
    failure, sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 251))
    job = asset_job(sqlite_assets, page_size=100)
    run_once(job, state, salesforce_sink, max_pages=1)
    before = state.watermarks.read(job.name, "timestamp", INITIAL).position
    assert before == Position(BASE, (100,))

    sfsim.configure(next_failures=[failure] * 10)
    begun = begin_run(job, state, "run-2", datetime.now(UTC))
    with pytest.raises(SyncRunError) as caught:
        sync_pages(job, state, salesforce_sink, "run-2", begun.upper_bound)
    assert caught.value.retryable
    assert "sync job 'asset-changes'" in str(caught.value)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == before

    sfsim.configure(next_failures=[])
    assert run_once(job, state, salesforce_sink).totals.rows == 150
    assert len(set(asset_ids(sfsim))) == 250


def test_a_superseded_run_stops_without_sending(sqlite_assets, state, salesforce_sink, sfsim):
    sqlite_assets.insert([(1, BASE)])
    job = asset_job(sqlite_assets)
    old = begin_run(job, state, "run-old", datetime.now(UTC))
    begin_run(job, state, "run-new", datetime.now(UTC))
    with pytest.raises(SyncRunError) as caught:
        sync_pages(job, state, salesforce_sink, "run-old", old.upper_bound)
    assert caught.value.code == "RUN_SUPERSEDED"
    assert asset_ids(sfsim) == []


def test_lag_keeps_recent_rows_for_a_later_run(sqlite_assets, state, salesforce_sink):
    now = datetime.now(UTC).replace(tzinfo=None)
    sqlite_assets.insert([(1, now - timedelta(minutes=5)), (2, now - timedelta(seconds=5))])
    job = asset_job(sqlite_assets)
    lagged = dataclasses.replace(
        job, source=dataclasses.replace(job.source, lag=timedelta(seconds=60))
    )
    assert run_once(lagged, state, salesforce_sink).totals.rows == 1
    assert run_once(job, state, salesforce_sink).totals.rows == 1


def test_text_keys_are_paged_in_the_database_collation_not_in_python_order(
    postgres, state, salesforce_sink, sfsim
):
    # ICU orders "apple" < "Banana" < "cherry"; Python's code-point order puts "Banana"
    # first. The watermark must follow the database's order or the run stalls.
    table = f"codes_{uuid.uuid4().hex[:8]}"
    with pyodbc.connect(postgres.odbc_connection_string, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE {table} (code varchar(20) COLLATE "en-x-icu" '
                           "PRIMARY KEY, changed timestamp(3) NOT NULL)")
        connection.execute(f"INSERT INTO {table} VALUES ('cherry', ?), ('Banana', ?), "
                           "('apple', ?), ('Date', ?)", BASE, BASE, BASE, BASE)
    job = SyncJob(
        name="codes", schedule_setting="SYNC_CODES_SCHEDULE", page_size=1,
        source=SourceSpec(
            connection_string=postgres.odbc_connection_string, relation=table,
            cursor_column="changed", cursor_kind="timestamp", key_columns=("code",),
            columns=("code",), initial_cursor=datetime(1900, 1, 1), dialect="postgresql",
        ),
        map_record=lambda row: {"External_Id__c": row["code"], "Name": row["code"]},
        sink=SalesforceSinkSpec("Asset", "External_Id__c"),
        min_interval=timedelta(0),
    )
    sink = RecordingSink(salesforce_sink)

    assert run_once(job, state, sink).totals.rows == 4

    assert sink.delivered == ["apple", "Banana", "cherry", "Date"]
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(
        BASE, ("Date",))
    assert run_once(job, state, sink).totals.rows == 0
    assert sorted(asset_ids(sfsim)) == sorted(sink.delivered)


def test_the_first_run_starts_after_the_configured_initial_watermark(
    sqlite_assets, state, salesforce_sink
):
    sqlite_assets.insert(
        (asset_id, BASE + timedelta(seconds=asset_id)) for asset_id in range(1, 11)
    )
    job = asset_job(sqlite_assets)
    job = dataclasses.replace(job, source=dataclasses.replace(
        job.source, initial_cursor=BASE + timedelta(seconds=6)))
    sink = RecordingSink(salesforce_sink)
    assert run_once(job, state, sink).totals.rows == 4
    assert sink.delivered == ["ASSET-7", "ASSET-8", "ASSET-9", "ASSET-10"]


def test_two_jobs_run_side_by_side_each_with_its_own_watermark_and_runs(
    sqlite_assets, postgres_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))
    postgres_assets.insert((asset_id, BASE) for asset_id in range(101, 131))
    first = asset_job(sqlite_assets, name="assets-eu", page_size=7)
    second = asset_job(postgres_assets, name="assets-us", page_size=7)
    assert first.instance_id != second.instance_id

    assert run_once(first, state, salesforce_sink).totals.rows == 20
    assert run_once(second, state, salesforce_sink).totals.rows == 30

    assert state.watermarks.read("assets-eu", "timestamp", INITIAL).position.key == (20,)
    assert state.watermarks.read("assets-us", "timestamp", INITIAL).position.key == (130,)
    assert [run["Rows"] for run in state.runs.last("assets-eu")] == [20]
    assert [run["Rows"] for run in state.runs.last("assets-us")] == [30]
    assert len(set(asset_ids(sfsim))) == 50


def versioned_source(request, table: str):
    """A table whose cursor the database sets: a version bumped inside the write
    transaction (SQLite) or the writing transaction's id (PostgreSQL)."""
    if request.param == "sqlite":
        connection_string, kind = request.getfixturevalue("sqlite_odbc"), "version"
        statements = [
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, version INTEGER)",
            f"CREATE TRIGGER {table}_ins AFTER INSERT ON {table} BEGIN UPDATE {table} SET "
            f"version = (SELECT COALESCE(MAX(version), 0) + 1 FROM {table}) "
            "WHERE id = NEW.id; END",
            f"CREATE TRIGGER {table}_upd AFTER UPDATE OF name ON {table} BEGIN UPDATE "
            f"{table} SET version = (SELECT MAX(version) + 1 FROM {table}) "
            "WHERE id = NEW.id; END",
        ]
    else:
        connection_string = request.getfixturevalue("postgres").odbc_connection_string
        kind = "xid"
        xid = "CAST(CAST(pg_current_xact_id() AS text) AS bigint)"
        statements = [
            f"CREATE TABLE {table} (id int PRIMARY KEY, name text, "
            f"xid bigint NOT NULL DEFAULT {xid})",
            f"CREATE FUNCTION {table}_stamp() RETURNS trigger AS $$ BEGIN "
            f"NEW.xid := {xid}; RETURN NEW; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {table}_upd BEFORE UPDATE ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION {table}_stamp()",
        ]
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)
    return connection_string, kind


@pytest.fixture(params=["sqlite", "postgresql"])
def versioned(request):
    table = f"versioned_{uuid.uuid4().hex[:8]}"
    connection_string, kind = versioned_source(request, table)
    return request.param, connection_string, kind, table


def test_a_run_on_a_database_set_version_cursor_reads_every_change_once(
    versioned, state, salesforce_sink, sfsim
):
    dialect, connection_string, kind, table = versioned
    cursor_column = "version" if kind == "version" else "xid"
    job = SyncJob(
        name="versioned", schedule_setting="SYNC_VERSIONED_SCHEDULE", page_size=40,
        source=SourceSpec(
            connection_string=connection_string, relation=table, cursor_column=cursor_column,
            cursor_kind=kind, key_columns=("id",), columns=("id", "name"), initial_cursor=0,
            dialect=dialect,
        ),
        map_record=lambda row: {"External_Id__c": f"V-{row['id']}", "Name": row["name"]},
        sink=SalesforceSinkSpec("Asset", "External_Id__c"),
        min_interval=timedelta(0),
    )
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        for batch in range(5):  # five transactions of 30 rows
            connection.autocommit = False
            connection.cursor().executemany(
                f"INSERT INTO {table} (id, name) VALUES (?, ?)",
                [(batch * 30 + n, f"first {batch * 30 + n}") for n in range(1, 31)],
            )
            connection.commit()
    sink = RecordingSink(salesforce_sink)

    assert run_once(job, state, sink).totals.rows == 150
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.execute(f"UPDATE {table} SET name = 'second ' || id WHERE id IN (3, 77, 150)")
    assert run_once(job, state, sink).totals.rows == 3

    assert sorted(sink.delivered[150:]) == ["V-150", "V-3", "V-77"]
    assert collections.Counter(sink.delivered[:150]).most_common(1)[0][1] == 1
    names = {record["External_Id__c"]: record["Name"] for record in sfsim.records("Asset")}
    assert len(names) == 150 and names["V-77"] == "second 77"
    assert run_once(job, state, sink).totals.rows == 0


def test_a_page_larger_than_one_collections_call_is_upserted_200_at_a_time(
    sqlite_assets, state, salesforce_sink, sfsim
):
    # The simulator, like Salesforce, refuses more than 200 records in one call.
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 451))
    run = run_once(asset_job(sqlite_assets, page_size=450), state, salesforce_sink)
    assert (run.totals.pages, run.totals.delivered, run.totals.dead_lettered) == (1, 450, 0)
    assert len(set(asset_ids(sfsim))) == 450


@pytest.mark.parametrize(("budget", "checkpoint_pages"), [
    (PageBudget(pages=3), 2),  # activities end mid-run, checkpoints of two pages
    (PageBudget(seconds=0), 10),  # every activity does one page
    (PageBudget(), 4),  # one activity, a checkpoint every 4 pages
])
def test_every_row_is_delivered_once_across_activity_and_checkpoint_boundaries(
    budget, checkpoint_pages, sqlite_assets, state, salesforce_sink, sfsim
):
    # One timestamp for all: only the key tells the pages apart.
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 1001))
    job = asset_job(sqlite_assets, page_size=70, checkpoint_pages=checkpoint_pages,
                    checkpoint_interval=600.0)
    sink = RecordingSink(salesforce_sink)

    run = run_once(job, state, sink, budget=budget)

    assert collections.Counter(sink.delivered).most_common(1)[0][1] == 1
    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 1001))
    assert (run.totals.pages, run.totals.rows, run.totals.delivered) == (15, 1000, 1000)
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (1000,))
    assert (watermark.totals.pages, watermark.totals.rows) == (15, 1000)
    assert state.runs.last(job.name, 1)[0]["Rows"] == 1000


def test_parallel_collections_calls_reject_the_right_records(
    sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 451))

    def nameless_now_and_then(row):
        record = asset_record(row)
        if row["Asset_ID"] in (3, 250, 410):  # one in each call of 200
            record["Name"] = None
        return record

    parallel = SalesforceSink(salesforce_sink.client, "Asset", "External_Id__c",
                              parallel_calls=3)
    job = asset_job(sqlite_assets, page_size=450, map_record=nameless_now_and_then)
    run = run_once(job, state, parallel)

    assert (run.totals.delivered, run.totals.dead_lettered) == (447, 3)
    letters = {row["RecordKey"]: row["ErrorCode"] for row in state.dead_letters.rows(job.name)}
    assert letters == dict.fromkeys(("3", "250", "410"), "REQUIRED_FIELD_MISSING")
    stored = set(asset_ids(sfsim))
    assert len(stored) == 447 and not stored & {"ASSET-3", "ASSET-250", "ASSET-410"}


class SlowFirstPagesSink:
    """Holds back the delivery of a page (named by its first asset) until the pages named in
    `waits_for` were delivered, so that later pages end first; fails those in `failing`
    once they were let go; makes the pages in `together` wait for one another, so that
    they are under way at once; and counts the calls under way at once. Events, not
    sleeps: the order holds however slow the machine is, and a wait that never ends
    breaks the test after 20 s instead of hanging it."""

    def __init__(self, sink, waits_for=None, failing=(), together=()) -> None:
        self.sink, self.failing = sink, set(failing)
        self.waits_for: dict[str, set[str]] = {
            first: set(others) for first, others in (waits_for or {}).items()}
        self.delivered: list[str] = []
        self.most_at_once = 0
        self._under_way = 0
        self._lock = threading.Condition()
        self._together = set(together)
        self._meeting = threading.Barrier(len(together)) if together else None

    def deliver(self, records):
        first = records[0]["External_Id__c"]
        with self._lock:
            self._under_way += 1
            self.most_at_once = max(self.most_at_once, self._under_way)
        try:
            if first in self._together and self._meeting is not None:
                self._meeting.wait(timeout=20)
            with self._lock:
                if not self._lock.wait_for(
                        lambda: self.waits_for.get(first, set()) <= set(self.delivered),
                        timeout=20):
                    raise AssertionError(f"{first}: the pages it waits for never came")
            if first in self.failing:
                raise SinkUnavailable("HTTP_503", "busy")
            delivery = self.sink.deliver(records)
            with self._lock:
                self.delivered += [record["External_Id__c"] for record in records]
                self._lock.notify_all()
            return delivery
        finally:
            with self._lock:
                self._under_way -= 1


def test_pages_in_flight_are_checkpointed_in_order_and_every_row_is_delivered_once(
    sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 501))
    job = asset_job(sqlite_assets, page_size=50, pages_in_flight=3, checkpoint_pages=2)
    sink = SlowFirstPagesSink(salesforce_sink, waits_for={"ASSET-1": {"ASSET-51"}},
                              together={"ASSET-1", "ASSET-51", "ASSET-101"})

    run = run_once(job, state, sink)

    assert sink.most_at_once == 3
    assert sink.delivered.index("ASSET-51") < sink.delivered.index("ASSET-1")  # 2 before 1
    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 501))
    assert (run.totals.pages, run.totals.rows, run.totals.delivered) == (10, 500, 500)
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (500,))
    assert (watermark.totals.pages, watermark.totals.rows) == (10, 500)


def test_a_page_failing_while_later_pages_were_accepted_leaves_the_watermark_before_it(
    sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 301))
    job = asset_job(sqlite_assets, page_size=50, pages_in_flight=3, checkpoint_interval=0)
    sink = SlowFirstPagesSink(salesforce_sink, failing={"ASSET-101"},
                              waits_for={"ASSET-101": {"ASSET-151", "ASSET-201"}})
    begun = begin_run(job, state, "run-1", datetime.now(UTC))

    with pytest.raises(SyncRunError, match="HTTP_503"):
        sync_pages(job, state, sink, "run-1", begun.upper_bound)

    assert {"ASSET-151", "ASSET-201"} <= set(sink.delivered)  # pages 4 and 5 were accepted
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (100,))  # page 3 failed: pages 1-2 only
    assert (watermark.totals.pages, watermark.totals.rows) == (2, 100)

    sink.failing.clear()
    result = sync_pages(job, state, sink, "run-1", begun.upper_bound)
    assert result.done and (result.totals.pages, result.totals.rows) == (6, 300)
    assert len(set(asset_ids(sfsim))) == 300


class FirstPageHeldWhileSecondRuns:
    """Holds back page 1 while page 2 is under way, until page 2 was delivered: the
    order in which two pages in flight side by side would end. A page 2 not started
    within `grace` seconds (it waits for page 1, as it must when both write one record)
    lets page 1 go on; the outcome asserted is the record left, never a time."""

    def __init__(self, sink, grace: float = 2.0) -> None:
        self.sink, self.grace = sink, grace
        self.second_started = threading.Event()
        self.second_delivered = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def deliver(self, records):
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == 1:
            if self.second_started.wait(self.grace):
                assert self.second_delivered.wait(20), "page 2 never ended"
            return self.sink.deliver(records)
        if call == 2:
            self.second_started.set()
        delivery = self.sink.deliver(records)
        if call == 2:
            self.second_delivered.set()
        return delivery


def test_pages_in_flight_writing_one_external_id_under_two_source_keys_leave_the_newest(
    sqlite_assets, state, salesforce_sink, sfsim
):
    # Assets 1 and 3 are two source keys the mapping writes to one Salesforce record
    # (external ids compare ignoring case): page 1 holds its older version, page 2 its
    # newer one.
    sqlite_assets.insert([(1, BASE), (2, BASE)], status="older")
    sqlite_assets.insert([(3, BASE + timedelta(seconds=1)), (4, BASE + timedelta(seconds=1))],
                         status="newer")

    def merged(row):
        record = asset_record(row)
        if row["Asset_ID"] in (1, 3):
            record["External_Id__c"] = "MERGED-1" if row["Asset_ID"] == 1 else "merged-1"
        return record

    job = asset_job(sqlite_assets, page_size=2, pages_in_flight=2, map_record=merged)
    sink = FirstPageHeldWhileSecondRuns(salesforce_sink)

    run = run_once(job, state, sink)

    assert (run.totals.rows, run.totals.delivered) == (4, 4)
    statuses = {record["External_Id__c"].casefold(): record["Status"]
                for record in sfsim.records("Asset")}
    assert statuses == {"merged-1": "newer", "asset-2": "older", "asset-4": "newer"}
