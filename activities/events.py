"""Activities of the event drain: thin adapters over shared/events/.

Each parses its request message, calls one function and returns a result message; only
event references and counts cross, never payloads or source rows. A batch is processed by
an instance of the batch job `asset-events`, staged here and run by the drain as its
sub-orchestration (shared/events/batch_processing.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from activities.batch import batch_store, instances_table
from shared.batch import batch_jobs
from shared.config import app_settings
from shared.crash_points import crash_point
from shared.events.batch_processing import settle_processed_batch, stage_event_batch
from shared.events.drain_steps import DrainStores, settle_and_advance, take_and_stage_batch
from shared.events.finish import finish_if_quiet
from shared.events.messages import (
    FinishRequest,
    FinishResult,
    SettleAdvanceRequest,
    SettleBatchRequest,
    StageBatchRequest,
    TakeBatchRequest,
    TakeStageRequest,
)
from shared.events.tables import event_queue
from shared.log_fields import log_event

blueprint = df.Blueprint()
log = logging.getLogger(__name__)

EVENT_DRAIN_TAKE_AND_STAGE = "event_drain_take_and_stage"
EVENT_DRAIN_SETTLE_AND_ADVANCE = "event_drain_settle_and_advance"
# Pipeline 1's steps (shared/events/messages.py): a drain started before pipeline 2 replays
# them until its next generation.
EVENT_DRAIN_TAKE_BATCH = "event_drain_take_batch"
EVENT_DRAIN_STAGE_BATCH = "event_drain_stage_batch"
EVENT_DRAIN_SETTLE_BATCH = "event_drain_settle_batch"
EVENT_DRAIN_FINISH = "event_drain_finish"
# Crash point (shared/crash_points.py): the batch's asset-events instance ended (applied in
# Salesforce), its events are not settled.
BATCH_PROCESSED = "events.process.after_apply"


@blueprint.function_name(EVENT_DRAIN_TAKE_AND_STAGE)
@blueprint.activity_trigger(input_name="request")
def event_drain_take_and_stage(request: dict[str, Any]) -> dict[str, Any]:
    take = TakeStageRequest.from_json(request)
    return take_and_stage_batch(_drain_stores(), take, datetime.now(UTC)).to_json()


@blueprint.function_name(EVENT_DRAIN_SETTLE_AND_ADVANCE)
@blueprint.activity_trigger(input_name="request")
def event_drain_settle_and_advance(request: dict[str, Any]) -> dict[str, Any]:
    settle = SettleAdvanceRequest.from_json(request)
    crash_point(BATCH_PROCESSED)
    result = settle_and_advance(_drain_stores(), settle, datetime.now(UTC))
    if result.finished and result.finish is not None:
        log_event(log, "event drain ended", run_id=settle.run_id, reason=result.finish.value)
    return result.to_json()


def _drain_stores() -> DrainStores:
    settings = app_settings()
    return DrainStores(event_queue(settings), batch_jobs(), batch_store(), instances_table(),
                       settings.batch)


@blueprint.function_name(EVENT_DRAIN_TAKE_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_take_batch(request: dict[str, Any]) -> dict[str, Any]:
    take = TakeBatchRequest.from_json(request)
    return event_queue(app_settings()).take_batch(take.limit, take.after, take.now).to_json()


@blueprint.function_name(EVENT_DRAIN_STAGE_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_stage_batch(request: dict[str, Any]) -> dict[str, Any]:
    stage = StageBatchRequest.from_json(request)
    return stage_event_batch(batch_jobs(), stage, batch_store(), instances_table(),
                             app_settings().batch, datetime.now(UTC)).to_json()


@blueprint.function_name(EVENT_DRAIN_SETTLE_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_settle_batch(request: dict[str, Any]) -> dict[str, Any]:
    settle = SettleBatchRequest.from_json(request)
    crash_point(BATCH_PROCESSED)
    return settle_processed_batch(event_queue(app_settings()), batch_store(), settle).to_json()


@blueprint.function_name(EVENT_DRAIN_FINISH)
@blueprint.activity_trigger(input_name="request")
def event_drain_finish(request: dict[str, Any]) -> dict[str, Any]:
    finish = FinishRequest.from_json(request)
    queue = event_queue(app_settings())
    result = FinishResult(finish_if_quiet(queue, queue.state, finish.now, finish.run_id))
    if result.finished:
        log_event(log, "event drain ended", run_id=finish.run_id, reason=result.reason.value)
    return result.to_json()
