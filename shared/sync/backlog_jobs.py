"""The upsert jobs a sync job's backlog submitted, recorded in Blob Storage so that no
job is lost sight of when the attempt that submitted it dies or its run fails.

    {container}/{job}/jobs/{ingest job id}    an empty blob (the run id in its metadata)

A part's job is recorded after it is created and before its data is uploaded: a crash
can leave an Open job without data unrecorded (it never writes), never a closed one. A
stage tried again submits its parts anew, so a job of an earlier attempt (or of a run
that failed, e.g. on poll errors) may still be running and write older values after the
newer ones the run goes on to write. `settle_earlier_jobs` answers how many of the
recorded jobs, other than the attempt's own, are still running: the run writes nothing
further until none is. Their outcomes are not counted (the rows they carried were sent
again, and are counted and dead-lettered from the jobs that sent them again); Open ones
are aborted (their submitter died before uploading), ended ones forgotten.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.salesforce import SalesforceClient
from shared.salesforce.errors import SalesforceError

log = logging.getLogger(__name__)

JOBS_FOLDER = "jobs"


def job_records(service: BlobServiceClient, container: str, job: str) -> LoadStore:
    return LoadStore.for_load(service, container, f"{job}/{JOBS_FOLDER}")


def recorded_jobs_store(store: LoadStore, job: str) -> LoadStore:
    """The job's records, beside its runs' folders in the run store's container."""
    return LoadStore(store.container, f"{job}/{JOBS_FOLDER}")


def record_job(records: LoadStore, run_id: str, job_id: str) -> None:
    """Record a created job before any data goes to it."""
    records.container.upload_blob(records.name(job_id), b"", overwrite=True,
                                  metadata={"run_id": run_id})


def forget_jobs(records: LoadStore, job_ids: Iterable[str]) -> None:
    for job_id in job_ids:
        with contextlib.suppress(ResourceNotFoundError):
            records.container.delete_blob(records.name(job_id))


def recorded_job_ids(records: LoadStore) -> list[str]:
    try:
        return [blob.name.rsplit("/", 1)[-1] for blob in
                records.container.list_blobs(name_starts_with=records.prefix + "/")]
    except ResourceNotFoundError:  # no backlog ever ran: the container is not there
        return []


def settle_earlier_jobs(records: LoadStore, client: Callable[[], SalesforceClient],
                        own: Collection[str]) -> int:
    """How many recorded jobs not in `own` are still running; Open ones are aborted,
    ended (or unknown to Salesforce) ones forgotten. `client` is called only when a
    job is recorded."""
    running = 0
    for job_id in recorded_job_ids(records):
        if job_id in own:
            continue
        try:
            snapshot = JobSnapshot.of(client().get_job(job_id))
            if snapshot.state == "Open":  # its attempt died before uploading: no data
                with contextlib.suppress(SalesforceError):
                    snapshot = JobSnapshot.of(client().abort_job(job_id))
        except SalesforceError as error:
            if error.status != 404:
                raise
            snapshot = JobSnapshot(job_id, "Aborted", 0, 0)  # deleted: it writes nothing
        if snapshot.ended:
            log.info("backlog job %s of an earlier attempt ended %s (%d records processed; "
                     "counted from the jobs that sent them again)", job_id, snapshot.state,
                     snapshot.processed)
            forget_jobs(records, (job_id,))
        else:
            running += 1
    return running
