"""A killed process, an unreachable database, refused credentials, a missing view."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from datetime import datetime

import pytest

from devtools.services import REPO_ROOT, free_port
from shared.sql.keyset import Position
from shared.sync.errors import SyncRunError
from tests.sync.drive import run_once
from tests.sync.sources import BASE, RecordingSink, asset_job

INITIAL = Position(datetime(1900, 1, 1), None)

def run_killed_after_page(page: int, checkpoint_pages: int, sqlite_assets, state, sfsim,
                          azurite, tmp_path) -> list[str]:
    """A run in its own process, SIGKILLed once the sink accepted `page` (100-row pages),
    before that page's checkpoint; returns the ids the sink was handed."""
    delivered_file = tmp_path / "delivered.txt"
    config = {
        "source": dataclasses.asdict(sqlite_assets),
        "page_size": 100,
        "checkpoint_pages": checkpoint_pages,
        "kill_after_page": page,
        "storage": azurite.connection_string,
        "tables": [state.watermarks.table.table_name, state.runs.table.table_name,
                   state.dead_letters.table.table_name],
        "salesforce": {"login_url": sfsim.login_url, "client_id": sfsim.client_id,
                       "client_secret": sfsim.client_secret},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sync.crashing_run"], cwd=REPO_ROOT,
        env={**os.environ, "CRASH_CONFIG": json.dumps(config),
             "DELIVERED_FILE": str(delivered_file), "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.strip() == "accepted", process.stderr.read()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    return delivered_file.read_text().split()


def test_killed_after_the_sink_accepted_a_page_the_next_run_resends_only_that_page(
    sqlite_assets, state, salesforce_sink, sfsim, azurite, tmp_path
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 451))
    crashed = run_killed_after_page(2, 1, sqlite_assets, state, sfsim, azurite, tmp_path)

    # The second page reached Salesforce, its checkpoint did not happen.
    assert len(crashed) == 200
    job = asset_job(sqlite_assets, page_size=100)
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == Position(BASE, (100,))

    sink = RecordingSink(salesforce_sink)
    run = run_once(job, state, sink)

    assert run.totals.rows == 350
    resent = set(crashed) & set(sink.delivered)
    assert resent == {f"ASSET-{n}" for n in range(101, 201)}  # that page, nothing more
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 450 and len(set(stored)) == 450


def test_killed_with_checkpoints_every_three_pages_resends_at_most_the_unflushed_pages(
    sqlite_assets, state, salesforce_sink, sfsim, azurite, tmp_path
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 651))
    # Pages 1-3 are checkpointed together; page 4 waits for a checkpoint, page 5 is in
    # flight (accepted by the sink, not by the run) when the process dies.
    crashed = run_killed_after_page(5, 3, sqlite_assets, state, sfsim, azurite, tmp_path)

    assert len(crashed) == 500
    job = asset_job(sqlite_assets, page_size=100)
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (300,))
    assert (watermark.totals.pages, watermark.totals.rows) == (3, 300)

    sink = RecordingSink(salesforce_sink)
    run = run_once(job, state, sink, run_id="run-crashing")  # the same run, resumed

    resent = set(crashed) & set(sink.delivered)
    assert resent == {f"ASSET-{n}" for n in range(301, 501)}  # the unflushed pages only
    assert (run.totals.pages, run.totals.rows, run.totals.delivered) == (7, 650, 650)
    stored = [record["External_Id__c"] for record in sfsim.records("Asset")]
    assert len(stored) == 650 and len(set(stored)) == 650


@pytest.fixture
def job_with_a_watermark(postgres_assets, state, salesforce_sink):
    postgres_assets.insert((asset_id, BASE) for asset_id in range(1, 11))
    job = asset_job(postgres_assets)
    run_once(job, state, salesforce_sink)
    watermark = state.watermarks.read(job.name, "timestamp", INITIAL)
    assert watermark.position == Position(BASE, (10,))
    postgres_assets.insert([(11, BASE)])
    return job, watermark

def broken(job, **source_changes):
    return dataclasses.replace(job, source=dataclasses.replace(job.source, **source_changes))

def assert_failed_cleanly(job, state, sink, watermark, code, cause):
    with pytest.raises(SyncRunError) as caught:
        run_once(job, state, sink)
    message = str(caught.value)
    assert message.startswith("sync job 'asset-changes': " + code), message
    assert cause in message.lower(), message
    assert state.watermarks.read(job.name, "timestamp", INITIAL).position == watermark.position
    last = state.runs.last(job.name, 1)[0]
    assert last["Outcome"] == "failed" and code in last["Error"]
    return message

def test_database_down(job_with_a_watermark, state, salesforce_sink, postgres):
    job, watermark = job_with_a_watermark
    down = broken(job, connection_string=job.source.connection_string.replace(
        f"Port={postgres.port}", f"Port={free_port()}"))
    message = assert_failed_cleanly(down, state, salesforce_sink, watermark,
                                    "SOURCE_UNREACHABLE", "cannot reach the source database")
    assert postgres.password not in message

def test_bad_credentials(job_with_a_watermark, state, salesforce_sink, postgres):
    job, watermark = job_with_a_watermark
    refused = broken(job, connection_string=job.source.connection_string.replace(
        f"Pwd={postgres.password}", "Pwd=not-the-password"))
    message = assert_failed_cleanly(refused, state, salesforce_sink, watermark,
                                    "SOURCE_LOGIN_FAILED", "refused the login")
    assert "not-the-password" not in message

def test_missing_view(job_with_a_watermark, state, salesforce_sink):
    job, watermark = job_with_a_watermark
    missing = broken(job, relation="public.no_such_changes_view")
    assert_failed_cleanly(missing, state, salesforce_sink, watermark,
                          "SOURCE_RELATION_MISSING", "no_such_changes_view")
