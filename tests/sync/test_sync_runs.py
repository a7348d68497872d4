"""Whole runs on real SQLite/PostgreSQL, Azurite and the Salesforce simulator."""

from __future__ import annotations

import collections
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.sql.keyset import Position
from shared.sync.asset_changes import asset_record
from shared.sync.pages import SyncRunError, begin_run, sync_next_page
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

    assert (run["rows"], run["pages"], run["delivered"]) == (1000, 10, 1000)
    assert sorted(sink.delivered) == sorted(f"ASSET-{n}" for n in range(1, 1001))
    stored = asset_ids(sfsim)
    assert len(stored) == 1000 and len(set(stored)) == 1000
    watermark = state.read_watermark(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (1000,))
    # Nothing new: the next run reads nothing and sends nothing.
    assert run_once(job, state, sink)["rows"] == 0
    assert len(sink.delivered) == 1000


def test_masked_fields_are_masked_before_mapping(sqlite_assets, state, salesforce_sink):
    sqlite_assets.insert([(1, BASE)])
    seen = []
    job = asset_job(sqlite_assets, map_record=lambda row: seen.append(row) or {
        "External_Id__c": f"ASSET-{row['Asset_ID']}", "Name": row["Asset_Name"]})
    run_once(job, state, salesforce_sink)
    assert seen[0]["Contact_Email"] == "**************.com"


def test_rows_inserted_while_a_run_is_under_way_go_to_the_next_run(
    sqlite_assets, state, salesforce_sink, sfsim
):
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

    assert first["rows"] == 300 and second["rows"] == 50
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

    assert run["rows"] == 30 and run["dead_lettered"] == 4 and run["delivered"] == 26
    letters = {row["RecordKey"]: row for row in state.dead_letter_rows(job.name)}
    assert sorted(letters) == ["10", "20", "30", "7"]
    assert letters["7"]["ErrorCode"] == "MAPPING_FAILED"
    assert "unknown currency" in letters["7"]["ErrorMessage"]
    assert letters["10"]["ErrorCode"] == "REQUIRED_FIELD_MISSING"
    assert "owner10@" not in letters["10"]["Record"]
    assert len(asset_ids(sfsim)) == 26
    assert state.read_watermark(job.name, "timestamp", INITIAL).position.key == (30,)


@pytest.mark.parametrize("failure", [503, 403])
def test_a_whole_call_failure_fails_the_page_and_leaves_the_watermark(
    failure, sqlite_assets, state, salesforce_sink, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 251))
    job = asset_job(sqlite_assets, page_size=100)
    run_once(job, state, salesforce_sink, max_pages=1)
    before = state.read_watermark(job.name, "timestamp", INITIAL).position
    assert before == Position(BASE, (100,))

    sfsim.configure(next_failures=[failure] * 10)
    begun = begin_run(job, state, "run-2", datetime.now(UTC))
    with pytest.raises(SyncRunError) as caught:
        sync_next_page(job, state, salesforce_sink, "run-2", begun["upper_bound"])
    assert caught.value.retryable
    assert "sync job 'asset-changes'" in str(caught.value)
    assert state.read_watermark(job.name, "timestamp", INITIAL).position == before

    sfsim.configure(next_failures=[])
    assert run_once(job, state, salesforce_sink)["rows"] == 150
    assert len(set(asset_ids(sfsim))) == 250


def test_a_superseded_run_stops_without_sending(sqlite_assets, state, salesforce_sink, sfsim):
    sqlite_assets.insert([(1, BASE)])
    job = asset_job(sqlite_assets)
    old = begin_run(job, state, "run-old", datetime.now(UTC))
    begin_run(job, state, "run-new", datetime.now(UTC))
    with pytest.raises(SyncRunError) as caught:
        sync_next_page(job, state, salesforce_sink, "run-old", old["upper_bound"])
    assert caught.value.code == "RUN_SUPERSEDED"
    assert asset_ids(sfsim) == []


def test_lag_keeps_recent_rows_for_a_later_run(sqlite_assets, state, salesforce_sink):
    now = datetime.now(UTC).replace(tzinfo=None)
    sqlite_assets.insert([(1, now - timedelta(minutes=5)), (2, now - timedelta(seconds=5))])
    job = asset_job(sqlite_assets)
    lagged = dataclasses.replace(
        job, source=dataclasses.replace(job.source, lag=timedelta(seconds=60))
    )
    assert run_once(lagged, state, salesforce_sink)["rows"] == 1
    assert run_once(job, state, salesforce_sink)["rows"] == 1
