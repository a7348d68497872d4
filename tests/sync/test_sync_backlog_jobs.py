"""The record of a backlog's upsert jobs (shared/sync/backlog_jobs.py) on Azurite and the
simulator: every job recorded before its data goes to it, the jobs of earlier attempts
counted until they ended, and a finish forgetting its own."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime

import pytest
from azure.storage.blob import BlobServiceClient

from shared.bulkload.jobs import poll_jobs
from shared.sync.backlog import backlog_sink_spec, backlog_store
from shared.sync.backlog_finish import finish_backlog
from shared.sync.backlog_jobs import (
    job_records,
    record_job,
    recorded_job_ids,
    recorded_jobs_store,
    settle_earlier_jobs,
)
from shared.sync.backlog_staging import stage_backlog
from shared.sync.backlog_submission import submit_part
from shared.sync.run import begin_run
from tests.sync.sources import BASE, asset_job


@pytest.fixture
def blobs(azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def staged_run(sqlite_assets, state, blobs, client):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 31))
    job = asset_job(sqlite_assets, page_size=10, backlog_threshold=10)
    begun = begin_run(job, state, "run-1", datetime.now(UTC))
    store = backlog_store(blobs, "backlog-" + uuid.uuid4().hex[:8], job.name, "run-1")
    staged = stage_backlog(job, state, store, client, "run-1", begun.upper_bound,
                           part_rows=10)
    return job, store, staged


def test_a_stage_records_every_job_and_its_finish_forgets_them(
    sqlite_assets, state, blobs, client
):
    job, store, staged = staged_run(sqlite_assets, state, blobs, client)
    records = recorded_jobs_store(store, job.name)
    ids = [snapshot.id for snapshot in staged.jobs]
    assert len(ids) == 3 and sorted(recorded_job_ids(records)) == sorted(ids)

    jobs = list(staged.jobs)
    deadline = time.monotonic() + 30
    while not all(snapshot.ended for snapshot in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
        jobs = poll_jobs(client, ids)
    finished = finish_backlog(job, state, store, client, "run-1", staged, jobs)

    assert finished.totals.delivered == 30
    assert recorded_job_ids(records) == []


def test_jobs_of_an_earlier_attempt_count_until_they_ended_an_open_one_is_aborted(
    sqlite_assets, state, blobs, client, sfsim
):
    sfsim.configure(job_delay_seconds=30)  # the staged jobs are still queued below
    job, store, staged = staged_run(sqlite_assets, state, blobs, client)
    records = recorded_jobs_store(store, job.name)
    spec = backlog_sink_spec(job)
    # An attempt that died between creating a job and uploading to it.
    opened = client.create_ingest_job(spec.sobject, "upsert", spec.external_id_field)
    record_job(records, "run-1", opened.id)
    record_job(records, "run-1", "750000000000000AAA")  # deleted in Salesforce meanwhile
    staged_ids = {snapshot.id for snapshot in staged.jobs}

    assert settle_earlier_jobs(records, lambda: client, staged_ids) == 0
    assert client.get_job(opened.id).state == "Aborted"
    assert sorted(recorded_job_ids(records)) == sorted(staged_ids)
    # To the next attempt (or run), the staged jobs are earlier ones, still running.
    assert settle_earlier_jobs(records, lambda: client, set()) == 3
    assert sorted(recorded_job_ids(records)) == sorted(staged_ids)


def test_no_backlog_ever_no_container_no_client(blobs):
    records = job_records(blobs, "backlog-" + uuid.uuid4().hex[:8], "asset-changes")

    def no_client():
        raise AssertionError("no job recorded: Salesforce is not asked")

    assert settle_earlier_jobs(records, no_client, set()) == 0


def test_a_job_whose_record_failed_is_aborted_before_any_data_goes_to_it(
    sqlite_assets, blobs, client
):
    job = asset_job(sqlite_assets)
    seen = []

    def record(job_id: str) -> None:
        seen.append(client.get_job(job_id).state)
        raise ConnectionError("storage unreachable")

    with pytest.raises(ConnectionError):
        submit_part(job, backlog_sink_spec(job), client,
                    io.BytesIO(b"External_Id__c\nASSET-1\n"), record)

    assert seen == ["Open"]  # recorded once created, before the upload
    (ingest,) = list(client.list_jobs())
    assert ingest.state == "Aborted" and ingest.number_records_processed == 0
