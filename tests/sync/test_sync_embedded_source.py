"""`make run`'s embedded source feeds the example job, run after run."""

from __future__ import annotations

import random
from pathlib import Path

from devtools import embedded_source
from shared.config import load_settings
from shared.sync.catalog import sync_jobs
from tests.sync.drive import run_once


def test_the_example_job_moves_the_embedded_rows_and_then_their_changes(
    tmp_path, state, salesforce_sink, sfsim
):
    path = tmp_path / "embedded.db"
    connection_string = f"Driver={{SQLite3}};Database={path};"
    assert embedded_source.database_path(
        {"SYNC_ASSET_CHANGES_SOURCE_CONNECTION": connection_string}, tmp_path / "none.json"
    ) == path
    database = embedded_source.open_database(path)
    rng = random.Random(7)
    assert embedded_source.seed(database, 120, rng) == 120
    assert embedded_source.seed(database, 120, rng) == 0  # only an empty table is seeded

    settings = load_settings({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SYNC_ASSET_CHANGES_ENABLED": "true",
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": connection_string,
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": embedded_source.VIEW,
        "SYNC_ASSET_CHANGES_LAG": "0",
        "SYNC_ASSET_CHANGES_PAGE_SIZE": "50",
        **sfsim.app_settings(),
    })
    job = sync_jobs(settings)["asset-changes"]
    assert run_once(job, state, salesforce_sink).totals.rows == 120
    assert len(sfsim.records("Asset")) == 120

    updated, added = embedded_source.change_some_rows(database, rng)
    second = run_once(job, state, salesforce_sink)
    assert second.totals.rows == updated + added
    assert len(sfsim.records("Asset")) == 120 + added
    database.close()


def test_default_database_without_a_sqlite_setting(tmp_path: Path):
    assert embedded_source.database_path(
        {"SYNC_ASSET_CHANGES_SOURCE_CONNECTION": "Driver={PostgreSQL Unicode};Server=x"},
        tmp_path / "none.json",
    ) == embedded_source.DEFAULT_DATABASE
