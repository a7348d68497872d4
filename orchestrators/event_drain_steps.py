"""What both step sequences of the event drain share: activity retries, its custom
status, the finish (event_drain_pipeline_2.py is the one a new drain runs,
event_drain_pipeline_1.py replays pipeline 1)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from activities.events import EVENT_DRAIN_FINISH
from shared.events.messages import DrainRun, FinishRequest, FinishResult

Steps = Generator[Any, Any, Any]

# An activity that raised (storage unreachable) is tried again before the drain fails; a
# failed drain is replaced by the next post or the safety timer, the events stay queued.
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000,
                                 max_number_of_attempts=3)


def finish_drain(context: df.DurableOrchestrationContext, run: DrainRun) -> Steps:
    report_drain(context, run, "finishing")
    answer = yield context.call_activity_with_retry(
        EVENT_DRAIN_FINISH, ACTIVITY_RETRY,
        FinishRequest(run.run_id, context.current_utc_datetime).to_json())
    return FinishResult.from_json(answer)


def report_drain(context: df.DurableOrchestrationContext, run: DrainRun, phase: str,
                 batch_instance: str | None = None) -> None:
    context.set_custom_status({
        "run_id": run.run_id, "phase": phase, "generation": run.generation,
        "batches": run.batches, "processed": run.processed,
        "dead_lettered": run.dead_lettered, "superseded": run.superseded,
        # The asset-events instance processing the batch: GET /api/batch-jobs/asset-events/{id}
        **({"batch_instance": batch_instance} if batch_instance else {}),
    })
