"""The drain's two activities per batch on Azurite: a take kept for its retry, settle then
finish or take the next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.batch.settings import BatchSettings
from shared.batch.store import MemoryBlobStore
from shared.config.framework import read_section
from shared.events.asset_events_job import JOB_NAME, asset_events_job
from shared.events.drain_state import DrainState
from shared.events.drain_steps import (
    DrainStores,
    read_taken_batch,
    settle_and_advance,
    take_and_stage_batch,
)
from shared.events.messages import (
    BatchEnd,
    FinishReason,
    ProcessedBatch,
    SettleAdvanceRequest,
    TakeStageRequest,
)
from shared.events.queue import EventQueue
from shared.events.validation import Event, Operation
from shared.storage.tables import table_client

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def stores(azurite, queue: EventQueue) -> DrainStores:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    batch_settings, problems = read_section(BatchSettings, {})
    assert not problems
    jobs = {JOB_NAME: asset_events_job({}, lambda: None)}  # type: ignore[arg-type, return-value]
    return DrainStores(queue, jobs, MemoryBlobStore.empty(),
                       table_client(service, f"B{uuid.uuid4().hex[:10]}"), batch_settings)


def post(queue: EventQueue, *ids: int) -> None:
    queue.store([Event("Asset", str(n), Operation.UPSERT, None, None) for n in ids], NOW)
    queue.state.mark_running(NOW)


def advance(instance_id: str, finish: bool, following: TakeStageRequest | None = None,
            ) -> SettleAdvanceRequest:
    return SettleAdvanceRequest("run1", ProcessedBatch(instance_id, BatchEnd.COMPLETED, 0),
                                max_attempts=5, retry_delay=1.0, now=NOW + timedelta(seconds=1),
                                finish_if_quiet=finish, next=following)


def test_a_take_tried_again_stages_the_events_of_its_first_try(stores: DrainStores):
    post(stores.queue, 1, 2, 3)
    request = TakeStageRequest("drain-run1-1", 10, None, NOW)

    first = take_and_stage_batch(stores, request, NOW)
    post(stores.queue, 4)  # due by the time the take is tried again
    again = take_and_stage_batch(stores, request, NOW)

    assert again == first
    assert (first.events, first.full, first.run is not None) == (3, False, True)
    kept = read_taken_batch(stores.store, "drain-run1-1")
    assert kept is not None
    assert [ref.id for ref in kept.events] == ["1", "2", "3"]


def test_an_empty_take_keeps_and_stages_nothing(stores: DrainStores):
    staged = take_and_stage_batch(stores, TakeStageRequest("drain-run1-1", 10, None, NOW), NOW)

    assert staged.nothing_due and staged.run is None
    assert read_taken_batch(stores.store, "drain-run1-1") is None
    assert list(stores.instances.list_entities()) == []


def test_a_short_batch_settled_in_a_quiet_queue_finishes_the_drain(stores: DrainStores):
    post(stores.queue, 1, 2)
    take_and_stage_batch(stores, TakeStageRequest("drain-run1-1", 10, None, NOW), NOW)

    result = settle_and_advance(stores, advance("drain-run1-1", finish=True,
                                                following=TakeStageRequest(
                                                    "drain-run1-2", 10, None, NOW)), NOW)

    assert (result.settled.removed, result.finish, result.next) == (2, FinishReason.IDLE, None)
    assert stores.queue.depth() == 0
    assert stores.queue.state.read_signal().state is DrainState.IDLE
    # Tried again (its answer was lost): the drain still finishes, nothing is taken.
    again = settle_and_advance(stores, advance("drain-run1-1", finish=True), NOW)
    assert (again.finish, again.next) == (FinishReason.IDLE, None)
    assert stores.queue.depth() == 0


def test_an_event_posted_during_the_batch_is_taken_next_instead_of_finishing(
        stores: DrainStores):
    post(stores.queue, 1, 2)
    first = take_and_stage_batch(stores, TakeStageRequest("drain-run1-1", 10, None, NOW), NOW)
    post(stores.queue, 7)

    result = settle_and_advance(stores, advance(
        "drain-run1-1", finish=True,
        following=TakeStageRequest("drain-run1-2", 10, first.cursor, NOW)), NOW)

    assert result.finish is FinishReason.EVENTS_DUE
    assert result.next is not None and result.next.events == 1
    kept = read_taken_batch(stores.store, "drain-run1-2")
    assert kept is not None and [ref.id for ref in kept.events] == ["7"]
    assert stores.queue.state.read_signal().state is DrainState.RUNNING


def test_settling_a_batch_whose_references_are_gone_fails_and_leaves_its_events(
        stores: DrainStores):
    post(stores.queue, 1)
    take_and_stage_batch(stores, TakeStageRequest("drain-run1-1", 10, None, NOW), NOW)
    stores.store.delete_folder(f"{JOB_NAME}/drain-run1-1/")

    with pytest.raises(LookupError):
        settle_and_advance(stores, advance("drain-run1-1", finish=True), NOW)
    assert stores.queue.depth() == 1
