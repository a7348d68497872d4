"""Several changes of one record in one page (a CDC-like view): the Salesforce sink writes
them in the view's order, whatever order its parallel sObject Collections calls end in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.sync.sinks import SalesforceSink, calls_in_rounds
from tests.sync.drive import run_once
from tests.sync.sources import BASE, asset_job, create_asset_source


@pytest.fixture
def changes(sqlite_odbc):
    return create_asset_source(sqlite_odbc, "sqlite", changes_per_asset=True)


@pytest.fixture
def parallel_sink(salesforce_sink, sfsim):
    # Each call works a random time (seeded): calls sent together end in any order.
    sfsim.configure(collection_call_seconds=0.3, seed=14)
    return SalesforceSink(salesforce_sink.client, "Asset", "External_Id__c", parallel_calls=3)


def statuses(sfsim) -> dict[str, str]:
    return {record["External_Id__c"]: record["Status"] for record in sfsim.records("Asset")}


def test_two_changes_of_new_records_in_one_page_leave_the_later_one(
    changes, state, parallel_sink, sfsim
):
    # One page of 500: the first change of assets 1-250, then their second. Calls of 200
    # hold the first change of 1-200; the first of 201-250 with the second of 1-150; the
    # second of 151-250.
    changes.insert(((n, BASE + timedelta(seconds=n)) for n in range(1, 251)), "first")
    changes.insert(((n, BASE + timedelta(seconds=1000 + n)) for n in range(1, 251)), "second")
    job = asset_job(changes, page_size=500)

    run = run_once(job, state, parallel_sink)

    assert (run.totals.rows, run.totals.delivered, run.totals.dead_lettered) == (500, 500, 0)
    assert state.dead_letters.rows(job.name) == []
    assert statuses(sfsim) == {f"ASSET-{n}": "second" for n in range(1, 251)}
    assert state.runs.last(job.name, 1)[0]["Rows"] == 500


def test_changes_of_existing_records_in_one_page_are_written_in_the_views_order(
    changes, state, parallel_sink, sfsim
):
    changes.insert(((n, BASE) for n in range(1, 1201)), "created")
    job = asset_job(changes, page_size=400, pages_in_flight=2)
    assert run_once(job, state, parallel_sink).totals.delivered == 1200
    # Six pages of 400 rows, each two calls of 200 together: the older change of 200
    # assets, then their newer one. Either call may end first.
    later = BASE + timedelta(hours=1)
    for page in range(6):
        assets = range(page * 200 + 1, page * 200 + 201)
        changes.insert(((n, later + timedelta(seconds=2 * page)) for n in assets), "older")
        changes.insert(((n, later + timedelta(seconds=2 * page + 1)) for n in assets), "newer")

    run = run_once(job, state, parallel_sink)

    assert (run.totals.rows, run.totals.delivered, run.totals.dead_lettered) == (2400, 2400, 0)
    assert statuses(sfsim) == {f"ASSET-{n}": "newer" for n in range(1, 1201)}


def test_calls_in_rounds_send_each_later_version_in_a_later_round():
    records = [{"X": f"K{n}"} for n in range(450)]
    records[10] = {"X": "k3"}  # the second version of K3: external ids ignore case
    records[300] = {"X": "K3"}  # its third
    records[301] = {"X": None}  # refused by Salesforce on its own: the first round

    rounds = calls_in_rounds(records, "X")

    first = [index for index in range(450) if index not in (10, 300)]
    assert rounds == [[first[:200], first[200:400], first[400:]], [[10]], [[300]]]
    assert calls_in_rounds([{"X": 1}, {"X": 2}], "X") == [[[0, 1]]]
