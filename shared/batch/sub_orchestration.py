"""A batch instance run as another orchestration's sub-orchestration.

`start_batch_instance` (orchestrators/batch/start.py) starts an instance from a durable client;
an orchestration that wants to wait for the instance's result runs it as its
sub-orchestration instead:

    run = <activity: stage_sub_instance(job, instance_id, records, ...).to_json()>
    result = yield context.call_sub_orchestrator(
        BATCH_ORCHESTRATOR, run, batch_durable_id(job.name, instance_id))

`instance_id` must be derived from the caller's own state (never random), so that a replay
or a redelivered staging activity names the same instance: staging it again finds the
claim and the manifest already there and answers the same input. The instance is listed,
reported and served (`GET /api/batch-jobs/{job}/...`) like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from shared.batch import batch_durable_id
from shared.batch.instances import InstanceRow, create_instance_row
from shared.batch.job import BatchJob
from shared.batch.loading import Manifest, first_run_input, stage_records
from shared.batch.plan import RunInput
from shared.batch.settings import BatchSettings
from shared.batch.store import BlobStore, InstanceFolder
from shared.storage.tables import ConcurrentWrite


class InstanceIdTaken(ValueError):
    """The instance id belongs to an instance staged with other records."""


def stage_sub_instance(job: BatchJob, instance_id: str, records: Sequence[dict[str, Any]],
                       store: BlobStore, table: TableClient, settings: BatchSettings,
                       now: datetime) -> RunInput:
    """Claim `instance_id`, stage `records` (all or nothing), and return the input of its
    `BATCH_ORCHESTRATOR` sub-orchestration. Safe to call again with the same arguments."""
    durable_id = batch_durable_id(job.name, instance_id)
    if not _create_row(table, job.name, instance_id, durable_id, now):
        row = InstanceRow.from_entity(dict(table.get_entity(job.name, instance_id)))
        if row.durable_id != durable_id:
            raise InstanceIdTaken(f"instance {instance_id!r} of {job.name!r} is {row.durable_id}")
    folder = InstanceFolder(job.name, instance_id)
    manifest = Manifest.read(store, folder)
    if manifest is None:
        manifest = stage_records(store, folder, records, job.block_size)
    elif manifest.total_records != len(records):
        raise InstanceIdTaken(f"instance {instance_id!r} of {job.name!r} was staged with "
                              f"{manifest.total_records} records, not {len(records)}")
    # The row stays STAGING until the orchestration records EXECUTING: should the caller
    # never start it, the claim ages out instead of blocking an ordered job for good.
    return first_run_input(manifest, settings, now)


def _create_row(table: TableClient, job: str, instance_id: str, durable_id: str,
                now: datetime) -> bool:
    """The instance's row (and its index row), created once: the caller's own state names
    the instance, so no claim blob is needed (no HTTP request can die holding it); False
    when it exists."""
    try:
        create_instance_row(table, job, instance_id, durable_id, now)
    except ConcurrentWrite:
        return False
    return True
