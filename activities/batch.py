"""Activities of a batch instance: thin adapters over shared/batch.

They exchange block numbers, group numbers and counts; the records stay in Blob Storage.
Each is safe to run twice (the Durable backend delivers at least once): see
shared/batch/blocks.py for how a block or a group is resumed rather than re-run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
from azure.data.tables import TableClient

from shared.batch import batch_jobs
from shared.batch.blocks import commit_group, run_segment
from shared.batch.claims import lapsed_claims, mark_claim_started
from shared.batch.complete import run_on_complete_once
from shared.batch.failures import write_failures_report
from shared.batch.instances import (
    InstanceRow,
    active_instances,
    first_active,
    mark_row_executing,
    mark_row_started,
    set_status,
    staging_rows,
)
from shared.batch.job import BatchJob, SchedulingStrategy
from shared.batch.liveness import Orchestration, ReadOrchestration, whose_turn
from shared.batch.messages import (
    CommitRequest,
    FinishAnswer,
    FinishRequest,
    SegmentRequest,
    StatusRecord,
    TurnRequest,
    WakeRequest,
)
from shared.batch.store import AzureBlobStore, InstanceFolder
from shared.config import app_settings
from shared.crash_points import crash_point
from shared.durable import read_status, runtime_state_of
from shared.log_fields import log_event
from shared.storage.clients import blob_service, table_service
from shared.storage.tables import table_client

blueprint = df.Blueprint()
log = logging.getLogger(__name__)

BATCH_RUN_SEGMENT = "batch_run_segment"
BATCH_COMMIT_GROUP = "batch_commit_group"
BATCH_CHECK_TURN = "batch_check_turn"
BATCH_RECORD_STATUS = "batch_record_status"
BATCH_FINISH = "batch_finish"
BATCH_WAKE_SUCCESSOR = "batch_wake_successor"
TURN_EVENT = "batch_turn"
# Crash point (shared/crash_points.py): the instance's final row is written, its successor
# not named (nor woken) yet.
INSTANCE_FINISHED = "batch.finish.after_final_row"


@functools.lru_cache(maxsize=1)
def batch_store() -> AzureBlobStore:
    settings = app_settings()
    return AzureBlobStore.in_container(blob_service(settings.storage), settings.batch.container)


def instances_table() -> TableClient:
    settings = app_settings()
    return table_client(table_service(settings.storage), settings.batch.instances_table)


def _job(name: str) -> BatchJob:
    return batch_jobs()[name]


@blueprint.function_name(BATCH_RUN_SEGMENT)
@blueprint.activity_trigger(input_name="request")
def batch_run_segment(request: dict[str, Any]) -> dict[str, Any]:
    segment = SegmentRequest.from_json(request)
    return run_segment(_job(segment.job), batch_store(), segment).to_json()


@blueprint.function_name(BATCH_COMMIT_GROUP)
@blueprint.activity_trigger(input_name="request")
def batch_commit_group(request: dict[str, Any]) -> dict[str, Any]:
    group = CommitRequest.from_json(request)
    return commit_group(_job(group.job), batch_store(), group).to_json()


def live_staging(job: str, rows: list[InstanceRow]) -> set[str]:
    """The STAGING instances whose claim is alive (a request holds it, or it started)."""
    alive, _lapsed = lapsed_claims(batch_store().container, job,
                                   [row.instance_id for row in staging_rows(rows)])
    return alive


def orchestration_reader(client: df.DurableOrchestrationClient) -> ReadOrchestration:
    """Reads an instance's orchestration through `client` (`shared.batch.liveness`)."""
    async def read(durable_id: str) -> Orchestration:
        status = await read_status(client, durable_id)
        if not status or status.runtime_status is None:
            return Orchestration(None)
        return Orchestration(runtime_state_of(status), status.output, status.custom_status)
    return read


@blueprint.function_name(BATCH_CHECK_TURN)
@blueprint.activity_trigger(input_name="request")
@blueprint.durable_client_input(client_name="client")
async def batch_check_turn(request: dict[str, Any], client: df.DurableOrchestrationClient
                           ) -> dict[str, Any]:
    """The instance's row and claim say it started; then whether an older one still runs.
    One that ended without its finish step (failed, terminated) has its row settled and is
    passed, as is a STAGING one that never started (shared/batch/liveness.py)."""
    turn = TurnRequest.from_json(request)
    table, container = instances_table(), batch_store().container
    await asyncio.to_thread(mark_row_started, table, turn.job, turn.instance_id)
    await asyncio.to_thread(mark_claim_started, container, turn.job, turn.instance_id)
    answer = await whose_turn(table, container, turn, orchestration_reader(client),
                              datetime.now(UTC))
    return answer.to_json()


@blueprint.function_name(BATCH_RECORD_STATUS)
@blueprint.activity_trigger(input_name="request")
def batch_record_status(request: dict[str, Any]) -> dict[str, Any]:
    record = StatusRecord.from_json(request)
    result = json.loads(record.result_json)
    if mark_row_executing(instances_table(), record.job, record.instance_id, result):
        log_event(log, "batch instance started", batch_job=record.job,
                  instance_id=record.instance_id, status=record.status,
                  total_records=result.get("totalRecords"))
    # The instance runs: its id must stay used even if its request died before marking it.
    mark_claim_started(batch_store().container, record.job, record.instance_id)
    return {}


@blueprint.function_name(BATCH_FINISH)
@blueprint.activity_trigger(input_name="request")
def batch_finish(request: dict[str, Any]) -> dict[str, Any]:
    """Failure report, on-complete hook, final row; names the job's next instance."""
    finish = FinishRequest.from_json(request)
    job = _job(finish.job)
    result = json.loads(finish.result_json)
    folder = InstanceFolder(job.name, finish.instance_id)
    rows = write_failures_report(batch_store(), folder)
    failed_on_complete = False
    if job.on_complete is not None:
        failed_on_complete = run_on_complete_once(batch_store(), folder, job.on_complete,
                                                  result)
    result["failedOnCompletePhase"] = failed_on_complete
    table = instances_table()
    set_status(table, job.name, finish.instance_id, result["status"], result)
    log_event(log, "batch instance ended",
              level=logging.INFO if result["status"] == "SUCCESSFUL" else logging.WARNING,
              batch_job=job.name, instance_id=finish.instance_id, status=result["status"],
              total_records=result["totalRecords"], successful_records=result["successfulRecords"],
              failed_records=result["failedRecords"], failed_on_complete=failed_on_complete)
    crash_point(INSTANCE_FINISHED)
    successor = None
    if job.scheduling_strategy is SchedulingStrategy.ORDERED_SEQUENTIAL:
        # Only to wake it early: a successor missed here finds its turn by its own timer.
        instances = active_instances(table, job.name)
        successor = first_active(instances, live_staging(job.name, instances))
    return FinishAnswer(failed_on_complete, rows,
                        successor.durable_id if successor else None).to_json()


@blueprint.function_name(BATCH_WAKE_SUCCESSOR)
@blueprint.activity_trigger(input_name="request")
@blueprint.durable_client_input(client_name="client")
async def batch_wake_successor(request: dict[str, Any], client: df.DurableOrchestrationClient
                               ) -> dict[str, Any]:
    durable_id = WakeRequest.from_json(request).durable_id
    try:
        await client.raise_event(durable_id, TURN_EVENT, {})
    except Exception as error:  # not started yet or ended: its own turn check covers it
        log.info("batch: could not wake %s (%s); its timer will", durable_id,
                 type(error).__name__)
        return {"woken": False}
    return {"woken": True}

