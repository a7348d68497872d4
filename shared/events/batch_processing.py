"""The drain's batches through the batch job `asset-events` (asset_events_job.py).

    stage_event_batch       the batch's event references staged as the records of one
                            instance, record i = event i (shared.batch.sub_orchestration)
    processed_batch         how the instance's sub-orchestration ended, from its result
    event_outcomes          per event: done, or failed with the failure's exception type
                            as its code and its message
    settle_processed_batch  the failures read back from the instance's report, mapped to
                            outcomes and settled as the queue settles any batch

The records carry no payload and no source row: the job reads the row itself, so a row
changed after the event was posted is read as it is now (the newest version wins).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from shared.batch.failures import read_record_failures
from shared.batch.job import BatchJob, StepFailure
from shared.batch.plan import BatchStatus
from shared.batch.settings import BatchSettings
from shared.batch.store import BlobStore, InstanceFolder
from shared.batch.sub_orchestration import stage_sub_instance
from shared.events.asset_events_job import JOB_NAME
from shared.events.messages import (
    BatchEnd,
    EventOutcome,
    EventRef,
    ProcessedBatch,
    SettleBatchRequest,
    SettleBatchResult,
    StageBatchRequest,
    StageBatchResult,
)
from shared.events.queue import EventQueue
from shared.log_fields import log_event

log = logging.getLogger(__name__)

INSTANCE_FAILED = "BatchInstanceFailed"
NOT_PROCESSED = "NotProcessed"


def event_record(event: EventRef) -> dict[str, Any]:
    return {"object": event.object, "id": event.id, "operation": event.operation.value,
            "version": event.version}


def stage_event_batch(jobs: Mapping[str, BatchJob], request: StageBatchRequest,
                      store: BlobStore, table: TableClient, settings: BatchSettings,
                      now: datetime) -> StageBatchResult:
    job = jobs.get(JOB_NAME)
    if job is None:
        raise LookupError(f"the batch job {JOB_NAME} is not registered: an app that calls "
                          "register_batch_jobs registers asset_events_job_from_settings(...) "
                          "too, or its event drain cannot process a batch")
    log_event(log, "event drain batch started", events=len(request.events),
              batch_job=job.name, instance_id=request.instance_id)
    run = stage_sub_instance(job, request.instance_id,
                             [event_record(event) for event in request.events], store, table,
                             settings, now)
    return StageBatchResult(run)


def processed_batch(instance_id: str, result: Mapping[str, Any] | None) -> ProcessedBatch:
    """How the instance ended, from the BatchJobResult its sub-orchestration returned."""
    status = (result or {}).get("status")
    failed = int((result or {}).get("failedRecords") or 0)
    if status == BatchStatus.SUCCESSFUL.value:
        return ProcessedBatch(instance_id, BatchEnd.COMPLETED, failed)
    if status == BatchStatus.FAILED_PROCESS_RECORDS.value:
        return ProcessedBatch(instance_id, BatchEnd.STOPPED, failed)
    return failed_batch(instance_id)


def failed_batch(instance_id: str) -> ProcessedBatch:
    return ProcessedBatch(instance_id, BatchEnd.FAILED, 0)


def event_outcomes(count: int, batch: ProcessedBatch,
                   failures: Mapping[int, StepFailure]) -> list[EventOutcome]:
    """One outcome per event of the batch (record i of the instance is event i)."""
    where = f"batch job {JOB_NAME} instance {batch.instance_id}"
    if batch.end is BatchEnd.FAILED:
        return [EventOutcome(False, INSTANCE_FAILED,
                             f"{where} failed; its status: GET /api/batch-jobs/{JOB_NAME}/"
                             f"{batch.instance_id} (the error is in the log)")] * count
    outcomes = []
    for index in range(count):
        failure = failures.get(index)
        if failure is not None:
            outcomes.append(EventOutcome(False, failure.exception_type,
                                         f"{failure.step}: {failure.message}"))
        elif batch.end is BatchEnd.COMPLETED:
            outcomes.append(EventOutcome(True))
        else:
            outcomes.append(EventOutcome(False, NOT_PROCESSED,
                                         f"{where} stopped at its failure limit, maybe "
                                         "before this event: it is tried again"))
    return outcomes


def settle_processed_batch(queue: EventQueue, store: BlobStore, request: SettleBatchRequest,
                           ) -> SettleBatchResult:
    batch = request.batch
    failures: dict[int, StepFailure] = {}
    if batch.end is not BatchEnd.FAILED and batch.failed_records > 0:
        failures = read_record_failures(store, InstanceFolder(JOB_NAME, batch.instance_id))
    outcomes = event_outcomes(len(request.events), batch, failures)
    log_event(log, "event drain batch ended", events=len(request.events),
              failed=sum(not o.done for o in outcomes), batch_job=JOB_NAME,
              instance_id=batch.instance_id, end=batch.end.value)
    return queue.settle(request.events, outcomes, request.max_attempts, request.retry_delay,
                        request.now, batch_id=batch.instance_id)

