"""A backlog part's upsert job: created, recorded in Blob Storage (backlog_jobs.py) before
any data goes to it, filled (the part streamed) and closed, or aborted when that fails.

`submit_part` is what staging hands each full part to (backlog_parts.py runs it on a
thread of its own); `submit_backlog_part` loads a part staged in Blob Storage, for runs
staged by an earlier version that wrote parts there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.crash_points import crash_point
from shared.salesforce import SalesforceClient
from shared.salesforce.errors import SalesforceError
from shared.sync.backlog import backlog_sink_spec, bulk_api_failure
from shared.sync.backlog_jobs import record_job, recorded_jobs_store
from shared.sync.job import SalesforceSinkSpec, SyncJob

# A part's upsert job is created, filled and closed; the parts after it are not.
BACKLOG_AFTER_PART_SUBMITTED = "sync.backlog.after_part_submitted"


def submit_backlog_part(job: SyncJob, client: SalesforceClient, store: LoadStore,
                        run_id: str, blob: str) -> JobSnapshot:
    """One upsert job for a part staged in Blob Storage (runs staged before parts were
    submitted while staging)."""
    spec = backlog_sink_spec(job)
    records = recorded_jobs_store(store, job.name)
    with store.download(blob) as part:
        return submit_part(job, spec, client, part,
                           lambda job_id: record_job(records, run_id, job_id))


def submit_part(job: SyncJob, spec: SalesforceSinkSpec, client: SalesforceClient,
                part: Any, record: Callable[[str], None]) -> JobSnapshot:
    """One upsert job for the part: created, recorded (backlog_jobs.py) before any data
    goes to it, filled and closed (aborted if that fails)."""
    try:
        ingest = client.create_ingest_job(spec.sobject, "upsert", spec.external_id_field)
    except SalesforceError as error:
        raise bulk_api_failure(job, error) from None
    try:
        record(ingest.id)
    except Exception:
        with contextlib.suppress(SalesforceError):
            client.abort_job(ingest.id)
        raise
    try:
        client.upload_job_data(ingest.id, part)
        snapshot = JobSnapshot.of(client.close_job(ingest.id))
    except SalesforceError as error:
        with contextlib.suppress(SalesforceError):
            client.abort_job(ingest.id)
        raise bulk_api_failure(job, error) from None
    crash_point(BACKLOG_AFTER_PART_SUBMITTED)
    return snapshot
