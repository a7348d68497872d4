"""Starting a batch instance: claim its id, stage its records all or nothing, start it.

    1. refuse an id whose orchestration exists (409 INSTANCE_ID_USED, or
       INSTANCE_ID_CONFLICT when other records were posted under it)
    2. claim the id (shared/batch/claims.py): a leased blob; a claim held by another
       request is refused (409 INSTANCE_STARTING, Retry-After), one whose request died
       before starting the instance is taken over
    3. write the instance's row (STAGING; it queues from now), renew the lease meanwhile
    4. stage the records (all or nothing), check the lease is still this request's, start
       `batch_job`; on any failure remove what was staged, the row and the claim
    5. mark the claim started and the row EXECUTABLE (the orchestration does both too)
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from activities.batch import batch_store, instances_table
from shared.batch import BATCH_ORCHESTRATOR, batch_durable_id, batch_jobs
from shared.batch.claims import (
    claim_instance_id,
    read_instance_claim,
    records_fingerprint,
    refused_claim,
    take_over_instance_claim,
)
from shared.batch.claims import conflict as claim_conflict
from shared.batch.claims import used as claim_used
from shared.batch.instances import mark_row_started, record_staging, release_instance
from shared.batch.job import BatchJob
from shared.batch.loading import (
    Manifest,
    discard_instance,
    first_run_input,
    stage_blocks,
    stage_records,
)
from shared.batch.source import read_source_blocks
from shared.batch.store import AzureBlobStore, BlobStore, InstanceFolder
from shared.config import app_settings
from shared.crash_points import crash_point
from shared.durable import read_status
from shared.problems import Problem, problem
from shared.sql.source import SourceError
from shared.storage.leased_claim import CLAIM_LEASE_SECONDS, ClaimHold, renew_until_cancelled

log = logging.getLogger(__name__)

INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Crash point (shared/crash_points.py): the instance's claim and row are written, nothing
# staged yet.
INSTANCE_CLAIMED = "batch.start.after_claim"


class ClaimLost(Exception):
    """The claim's lease lapsed while this request staged, and another request took the id."""


# Writes the instance's records into its folder, all or nothing; returns the manifest.
Stager = Callable[[BlobStore, InstanceFolder, BatchJob], Manifest]


@dataclass(frozen=True)
class StartedInstance:
    instance_id: str
    total_records: int


class BatchStartRefused(Exception):
    """The instance was not started; `problem` is the answer to give."""

    def __init__(self, answer: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(answer.body.get("detail", ""))
        self.problem = answer
        self.headers = headers


async def start_batch_instance(client: df.DurableOrchestrationClient, job_name: str,
                               records: Sequence[dict[str, Any]], instance_id: str | None = None,
                               where: str = "") -> str:
    """Stage `records` (already parsed) as one instance of `job_name` and start it.

    Returns the batch instance id; raises BatchStartRefused (404 unknown job, 400 bad id,
    409 id used, being started or used by other records) with nothing staged."""
    started = await start_staged_instance(
        client, job_name, records_fingerprint(records),
        lambda store, folder, job: stage_records(store, folder, records, job.block_size),
        instance_id, where)
    return started.instance_id


async def start_staged_instance(client: df.DurableOrchestrationClient, job_name: str,
                                fingerprint: str, stage: Stager,
                                instance_id: str | None = None,
                                where: str = "") -> StartedInstance:
    """Claim the instance id, `stage` its records (all or nothing), start its orchestration.

    `fingerprint` tells this input from another posted under the same id. `stage` may raise
    BatchStartRefused: what it wrote is removed and the id freed, as on any failure."""
    settings = app_settings()
    job = batch_jobs().get(job_name)
    if job is None:
        raise BatchStartRefused(problem(404, "UNKNOWN_BATCH_JOB", "Unknown batch job",
                                        f"no batch job {job_name!r}", where))
    instance_id = instance_id or uuid.uuid4().hex
    if not INSTANCE_ID.fullmatch(instance_id):
        raise BatchStartRefused(problem(
            400, "INVALID_INSTANCE_ID", "Invalid instance id",
            "instanceId must be 1-100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit", where))
    durable_id = batch_durable_id(job.name, instance_id)
    store, table = batch_store(), instances_table()
    hold, taken_over = await _claim(client, store, job, instance_id, fingerprint, where)
    await asyncio.to_thread(record_staging, table, job.name, instance_id, durable_id,
                            datetime.now(UTC))
    crash_point(INSTANCE_CLAIMED)
    folder = InstanceFolder(job.name, instance_id)
    renewing = asyncio.create_task(renew_until_cancelled(hold))
    try:
        if taken_over:  # whatever the request that died had staged
            await asyncio.to_thread(discard_instance, store, folder)
        manifest = await asyncio.to_thread(stage, store, folder, job)
        if not await asyncio.to_thread(hold.still_held):
            raise ClaimLost(f"batch {job.name} {instance_id}: the claim's lease was lost "
                            "while staging; another request took the id over")
        run = first_run_input(manifest, settings.batch, datetime.now(UTC))
        await client.start_new(BATCH_ORCHESTRATOR, durable_id, run.to_json())
    except BaseException:
        renewing.cancel()
        # Undone only while the claim is still this request's: a request that took it over
        # owns the folder and the row now.
        if await asyncio.to_thread(hold.still_held):
            await asyncio.to_thread(discard_instance, store, folder)
            await asyncio.to_thread(release_instance, table, job.name, instance_id)
            await asyncio.to_thread(hold.delete)
        raise
    renewing.cancel()
    try:
        await asyncio.to_thread(hold.mark_started)
        # Only STAGING -> EXECUTABLE: a short instance may have ended already, and its
        # final row must not turn active again (the ordered queue would wait on it forever).
        await asyncio.to_thread(mark_row_started, table, job.name, instance_id)
    except Exception:  # the orchestration marks both itself once it runs
        log.exception("batch %s %s: started, but its claim or row could not be updated",
                      job.name, instance_id)
    return StartedInstance(instance_id, manifest.total_records)


async def _started_refusal(client: df.DurableOrchestrationClient, store: AzureBlobStore,
                           job: BatchJob, instance_id: str, fingerprint: str,
                           where: str) -> Problem | None:
    """409 when the id's orchestration exists: other records, or the same ones again."""
    existing = await read_status(client, batch_durable_id(job.name, instance_id))
    if not existing or existing.runtime_status is None:
        return None
    claim = await asyncio.to_thread(read_instance_claim, store.container, job.name,
                                    instance_id)
    if claim is not None and claim.fingerprint and claim.fingerprint != fingerprint:
        return claim_conflict(job.name, instance_id, where)
    return claim_used(job.name, instance_id, where)


async def _claim(client: df.DurableOrchestrationClient, store: AzureBlobStore, job: BatchJob,
                 instance_id: str, fingerprint: str, where: str) -> tuple[ClaimHold, bool]:
    """The id's claim, held by this request (and whether it was taken over from a request
    that died), or BatchStartRefused."""
    refused = await _started_refusal(client, store, job, instance_id, fingerprint, where)
    if refused is not None:
        raise BatchStartRefused(refused)
    hold = await asyncio.to_thread(claim_instance_id, store.container, job.name, instance_id,
                                   fingerprint)
    if hold is not None:
        return hold, False
    refused = await _started_refusal(client, store, job, instance_id, fingerprint, where)
    if refused is None:
        claim = await asyncio.to_thread(read_instance_claim, store.container, job.name,
                                        instance_id)
        refused = refused_claim(claim, fingerprint, job.name, instance_id, datetime.now(UTC),
                                where)
    if refused is None:
        hold = await asyncio.to_thread(take_over_instance_claim, store.container, job.name,
                                       instance_id, fingerprint)
        if hold is not None:
            log.warning("batch %s %s: took over a claim abandoned before its instance "
                        "started", job.name, instance_id)
            return hold, True
        refused = refused_claim(None, fingerprint, job.name, instance_id, datetime.now(UTC),
                                where)
    assert refused is not None
    starting = refused.body["code"] == "INSTANCE_STARTING"
    raise BatchStartRefused(refused, {"Retry-After": str(CLAIM_LEASE_SECONDS)} if starting
                            else None)


def source_stager(values: Mapping[str, Any], where: str) -> Stager:
    """Stages the rows the job's source selects with `values`, a block at a time; a source
    that fails, or selects no row, refuses the start (what was staged is removed)."""
    def stage(store: BlobStore, folder: InstanceFolder, job: BatchJob) -> Manifest:
        assert job.source is not None
        try:
            manifest = stage_blocks(store, folder, read_source_blocks(
                job.source, values, job.block_size), job.block_size)
        except SourceError as error:
            raise BatchStartRefused(problem(
                503 if error.code == "SOURCE_UNREACHABLE" else 502, error.code,
                "Batch source failed", f"{error.message}; nothing was staged", where)) from None
        if manifest.total_records == 0:
            raise BatchStartRefused(problem(
                400, "NO_RECORDS", "Batch input refused",
                f"the source of job {job.name!r} selects no row with these parameters; "
                "nothing was staged", where))
        return manifest

    return stage
