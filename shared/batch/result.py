"""Mule's BatchJobResult as this app's JSON (camelCase), built from an instance's counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.batch.job import BatchJob
from shared.batch.plan import BatchStatus, RunProgress


def batch_job_result(job: BatchJob, progress: RunProgress, status: BatchStatus,
                     now: datetime, *, failed_on_complete: bool = False) -> dict[str, Any]:
    """The result as the status endpoint and the on-complete hook see it."""
    started = datetime.fromisoformat(progress.started_at)
    steps = {tally.step: tally for tally in progress.steps}
    failures = []
    step_results = []
    for index, step in enumerate(job.steps):
        tally = steps.get(index)
        step_results.append({
            "stepName": step.name,
            "receivedRecords": tally.received if tally else 0,
            "successfulRecords": tally.successful if tally else 0,
            "failedRecords": tally.failed if tally else 0,
        })
        for kind, count in sorted((tally.failed_by_type if tally else {}).items()):
            failures.append({"step": step.name, "exceptionType": kind, "count": count})
    return {
        "batchJobInstanceId": progress.instance_id,
        "jobName": job.name,
        "status": status.value,
        "totalRecords": progress.total_records,
        "loadedRecords": progress.total_records,
        "processedRecords": progress.processed,
        "successfulRecords": progress.successful,
        "failedRecords": progress.failed,
        "elapsedTimeInMillis": max(0, int((now - started).total_seconds() * 1000)),
        "failedOnInputPhase": False,
        "failedOnLoadingPhase": False,
        "failedOnCompletePhase": failed_on_complete,
        "blockSize": progress.block_size,
        "steps": step_results,
        "failuresByStepAndType": failures,
    }
