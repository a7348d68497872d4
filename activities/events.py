"""Activities of the event drain: thin adapters over shared/events/.

Each parses its request message, calls one function and returns a result message; only
event references and counts cross, never payloads or source rows.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared.config import app_settings
from shared.events.finish import finish_if_quiet
from shared.events.messages import (
    FinishRequest,
    FinishResult,
    ProcessBatchRequest,
    ProcessBatchResult,
    SettleBatchRequest,
    TakeBatchRequest,
)
from shared.events.processing import apply_events, asset_view_source
from shared.events.tables import event_queue
from shared.salesforce import process_client

blueprint = df.Blueprint()
log = logging.getLogger(__name__)

EVENT_DRAIN_TAKE_BATCH = "event_drain_take_batch"
EVENT_DRAIN_PROCESS_BATCH = "event_drain_process_batch"
EVENT_DRAIN_SETTLE_BATCH = "event_drain_settle_batch"
EVENT_DRAIN_FINISH = "event_drain_finish"


@blueprint.function_name(EVENT_DRAIN_TAKE_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_take_batch(request: dict[str, Any]) -> dict[str, Any]:
    take = TakeBatchRequest.from_json(request)
    return event_queue(app_settings()).take_batch(take.limit, take.after, take.now).to_json()


@blueprint.function_name(EVENT_DRAIN_PROCESS_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_process_batch(request: dict[str, Any]) -> dict[str, Any]:
    """The seam (shared/events/processing.py): a batch job will run here instead."""
    batch = ProcessBatchRequest.from_json(request)
    settings = app_settings()
    section, sync = settings.asset_changes_sync, settings.sync
    sources = {"Asset": asset_view_source(
        section.connection, section.view, section.dialect, sync.source_login_timeout,
        sync.source_query_timeout)}
    log.info("event drain: processing a batch of %d events", len(batch.events))
    outcomes = apply_events(batch.events, sources,
                            lambda: process_client(settings.salesforce))
    log.info("event drain: processed a batch of %d events (%d failed)", len(batch.events),
             sum(not outcome.done for outcome in outcomes))
    return ProcessBatchResult(outcomes).to_json()


@blueprint.function_name(EVENT_DRAIN_SETTLE_BATCH)
@blueprint.activity_trigger(input_name="request")
def event_drain_settle_batch(request: dict[str, Any]) -> dict[str, Any]:
    settle = SettleBatchRequest.from_json(request)
    return event_queue(app_settings()).settle(
        settle.events, settle.outcomes, settle.max_attempts, settle.retry_delay, settle.now
    ).to_json()


@blueprint.function_name(EVENT_DRAIN_FINISH)
@blueprint.activity_trigger(input_name="request")
def event_drain_finish(request: dict[str, Any]) -> dict[str, Any]:
    finish = FinishRequest.from_json(request)
    queue = event_queue(app_settings())
    return FinishResult(finish_if_quiet(queue, queue.state, finish.now)).to_json()
