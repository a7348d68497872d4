"""A level's Salesforce ingest jobs: create, upload and close (apart, or a part's job in one
step), poll, abort.

Each step answers `JobSnapshot`s, the little the orchestration needs to decide (state and
counts), and is safe to repeat: the Durable backend runs an activity at least once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.bulkload.job_intents import JobIntents, PartIntent, PartJob
from shared.bulkload.load_events import log_job_closed, log_job_created
from shared.bulkload.messages import JobSnapshot
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore
from shared.crash_points import crash_point
from shared.salesforce import SalesforceClient
from shared.salesforce.errors import SalesforceError

# Salesforce created the ingest job; neither its row nor the activity's result records it.
JOB_CREATED = "bulkload.create_job.after_create"
# The part is uploaded, the job not closed.
PART_UPLOADED = "bulkload.upload.after_upload"
# The job is closed; the activity's result is not recorded.
JOB_CLOSED = "bulkload.upload.after_close"


def create_level_job(client: SalesforceClient, intents: JobIntents, part: PartJob,
                     level: LoadLevel, now: datetime) -> JobSnapshot:
    """Create the part's job; a repeated try answers the job an earlier one recorded if
    it is still Open, else creates one and aborts what a lost create left Open
    (job_intents.py)."""
    earlier = intents.begin(part, level, now)
    if earlier is not None and earlier.job_id:
        recorded = client.get_job(earlier.job_id)
        if recorded.state == "Open":
            return JobSnapshot.of(recorded)
    return _create_recorded_job(client, intents, part, level, earlier)


def submit_part_job(client: SalesforceClient, intents: JobIntents, store: LoadStore,
                    part: PartJob, level: LoadLevel, blob: str, now: datetime) -> JobSnapshot:
    """Create the part's job, upload the part and close the job; safe to repeat after a
    crash at any point. A repeated try finds the job an earlier one recorded: still Open, it
    uploads again (refused if the part was stored) and closes it; closed or ended, it
    answers it as it is. A try that finds no job recorded creates one and aborts what a
    lost create left Open (job_intents.py)."""
    earlier = intents.begin(part, level, now)
    if earlier is not None and earlier.job_id:
        job_id = earlier.job_id
    else:
        job_id = _create_recorded_job(client, intents, part, level, earlier).id
    return upload_and_close_job(client, store, job_id, blob)


def _create_recorded_job(client: SalesforceClient, intents: JobIntents, part: PartJob,
                         level: LoadLevel, earlier: PartIntent | None) -> JobSnapshot:
    job = client.create_ingest_job(
        level.object, level.operation,
        level.external_id_field if level.operation == "upsert" else None,
    )
    log_job_created(level, JobSnapshot.of(job))
    crash_point(JOB_CREATED)
    abandoned = []
    if earlier is not None and not earlier.job_id:
        abandoned = intents.abort_abandoned(client, part, level, earlier, job)
    intents.record(part, level, job.id, abandoned)
    return JobSnapshot.of(job)


def upload_and_close_job(
    client: SalesforceClient, store: LoadStore, job_id: str, blob: str
) -> JobSnapshot:
    """Upload the part and close the job; safe to repeat after a crash at any point.

    The first try uploads at once (no call to read the job first); a repeated one finds
    the upload refused, reads the job, and only closes it if it is still open.
    """
    with store.download(blob) as part:
        try:
            client.upload_job_data(job_id, part)
        except SalesforceError as error:
            if error.status >= 500 or error.status in (401, 429):
                raise
            # Refused: stored by an earlier try ("multiple contents"), or already closed.
            job = client.get_job(job_id)
            if job.state != "Open":
                return JobSnapshot.of(job)
    crash_point(PART_UPLOADED)
    closed = client.close_job(job_id)
    log_job_closed(store, JobSnapshot.of(closed))
    crash_point(JOB_CLOSED)
    return JobSnapshot.of(closed)


def poll_jobs(client: SalesforceClient, job_ids: Sequence[str]) -> list[JobSnapshot]:
    return [JobSnapshot.of(client.get_job(job_id)) for job_id in job_ids]


def abort_jobs(client: SalesforceClient, job_ids: Sequence[str]) -> list[JobSnapshot]:
    """Abort jobs still running; a job that finished meanwhile is reported as it ended."""
    snapshots = []
    for job_id in job_ids:
        try:
            snapshots.append(JobSnapshot.of(client.abort_job(job_id)))
        except SalesforceError:
            snapshots.append(JobSnapshot.of(client.get_job(job_id)))
    return snapshots
