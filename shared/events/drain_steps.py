"""The drain's two activities per batch (pipeline 2, shared/events/messages.py).

    take_and_stage_batch  take the due events and stage them as one instance of the batch
                          job `asset-events`; the references (with the ETags settling needs)
                          are kept beside the instance, `{job}/{instance}/event-refs.json`,
                          and only counts go back to the orchestration
    settle_and_advance    settle that batch from its kept references and the instance's
                          outcome; then, after a short batch, finish the drain if quiet
                          (finish.py); unless finished, take and stage the next batch

Both are safe to run again (an activity runs at least once): the references are written
only if absent, so a second try of a take that got as far as writing them stages the same
events under the same instance id instead of taking others; settling an event already
settled finds it gone or changed and leaves it; the idle mark is ETag-guarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from azure.data.tables import TableClient

from shared.batch.job import BatchJob
from shared.batch.settings import BatchSettings
from shared.batch.store import BlobStore, InstanceFolder
from shared.events.asset_events_job import JOB_NAME
from shared.events.batch_processing import settle_processed_batch, stage_event_batch
from shared.events.finish import finish_if_quiet
from shared.events.messages import (
    FinishReason,
    SettleAdvanceRequest,
    SettleAdvanceResult,
    SettleBatchRequest,
    StageBatchRequest,
    StagedBatch,
    TakeBatchResult,
    TakeStageRequest,
)
from shared.events.queue import EventQueue
from shared.storage.tables import ConcurrentWrite

REFS_BLOB = "event-refs.json"


class BatchRefsMissing(LookupError):
    """A batch to settle has no kept references (its instance folder was removed)."""


@dataclass(frozen=True)
class DrainStores:
    """Where a drain step reads and writes: the queue, the batch job's blobs and rows."""

    queue: EventQueue
    jobs: Mapping[str, BatchJob]
    store: BlobStore
    instances: TableClient
    batch_settings: BatchSettings


def refs_blob(instance_id: str) -> str:
    return f"{InstanceFolder(JOB_NAME, instance_id).prefix}{REFS_BLOB}"


def read_taken_batch(store: BlobStore, instance_id: str) -> TakeBatchResult | None:
    stored = store.read(refs_blob(instance_id))
    return None if stored is None else TakeBatchResult.from_json(stored[0].decode())


def keep_taken_batch(store: BlobStore, instance_id: str,
                     taken: TakeBatchResult) -> TakeBatchResult:
    """Write the batch's references once; a try that lost the race uses the winner's."""
    try:
        store.write(refs_blob(instance_id), taken.to_text().encode(), etag=None)
    except ConcurrentWrite:
        kept = read_taken_batch(store, instance_id)
        if kept is None:
            raise
        return kept
    return taken


def take_and_stage_batch(stores: DrainStores, request: TakeStageRequest,
                         now: datetime) -> StagedBatch:
    taken = read_taken_batch(stores.store, request.instance_id)
    if taken is None:
        taken = stores.queue.take_batch(request.limit, request.after, request.now)
        if not taken.events:
            return StagedBatch(request.instance_id, 0, taken.stale,
                               taken.stale >= request.limit, taken.cursor)
        taken = keep_taken_batch(stores.store, request.instance_id, taken)
    staged = stage_event_batch(stores.jobs, StageBatchRequest(request.instance_id, taken.events),
                               stores.store, stores.instances, stores.batch_settings, now)
    return StagedBatch(request.instance_id, len(taken.events), taken.stale,
                       len(taken.events) + taken.stale >= request.limit, taken.cursor,
                       staged.run)


def settle_and_advance(stores: DrainStores, request: SettleAdvanceRequest,
                       now: datetime) -> SettleAdvanceResult:
    instance_id = request.batch.instance_id
    taken = read_taken_batch(stores.store, instance_id)
    if taken is None:
        raise BatchRefsMissing(f"the batch of instance {instance_id} of {JOB_NAME} has no "
                               f"{REFS_BLOB}: its events stay queued for the next drain")
    settled = settle_processed_batch(stores.queue, stores.store, SettleBatchRequest(
        taken.events, request.batch, request.max_attempts, request.retry_delay, request.now))
    finish: FinishReason | None = None
    if request.finish_if_quiet:
        finish = finish_if_quiet(stores.queue, stores.queue.state, request.now,
                                 request.run_id)
        if finish is FinishReason.IDLE:
            return SettleAdvanceResult(settled, finish)
    staged = None if request.next is None else take_and_stage_batch(stores, request.next, now)
    return SettleAdvanceResult(settled, finish, staged)
