"""Mule-Batch semantics on Durable Functions (seed 004): the batch engine's public API.

Declare a job once, register it, and post records to it:

    from shared.batch import (AcceptPolicy, Aggregator, BatchJob, BatchStep,
                              register_batch_jobs)

    register_batch_jobs(BatchJob(name="orders", steps=(
        BatchStep("check", check_order),                       # fn(BatchRecord) -> dict|None
        BatchStep("load", aggregator=Aggregator(size=200, commit=upsert_orders)),
        BatchStep("report", report_failure, accept_policy=AcceptPolicy.ONLY_FAILURES),
    )))                                                        # in function_app.py, at import

    POST /api/batch-jobs/orders[?instanceId=...]   JSON array, NDJSON or CSV -> 202
                                                   or {"source": {"params": {...}}} when
                                                   the job declares a BatchSource (a view)
    GET  /api/batch-jobs/orders[/{id}[/failures]]  a page of instances (newest first),
                                                   BatchJobResult, failures CSV

From other code (another capability's orchestration or starter):

- `start_batch_instance(client, job_name, records, instance_id=None)` (in
  `orchestrators.batch.start`) validates, stages and starts one instance from a durable client;
  it returns the instance id or raises `BatchStartRefused` carrying the problem document.
- `BATCH_ORCHESTRATOR` is the orchestration's name; `batch_durable_id(job, id)` the durable
  instance id of an instance, whose output (custom status while running) is the
  BatchJobResult dict (`shared.batch.result`).
- To wait for an instance's result, an orchestration runs it as its sub-orchestration:
  an activity stages the records with `shared.batch.sub_orchestration.stage_sub_instance`
  (an instance id derived from the caller's state; staging again is harmless) and returns
  the input of `call_sub_orchestrator(BATCH_ORCHESTRATOR, input, batch_durable_id(...))`;
  after it, `shared.batch.failures.read_record_failures` gives each failed record's first
  failure by record index (the event drain does this: shared/events/batch_processing.py).

Semantics (REFERENCE.md "Batch semantics"): records are staged in blocks of `block_size`
in Blob Storage before the instance starts, all or nothing; blocks run through the steps in
order, at most `max_concurrency` activities at once; a record enters a step only if the
accept policy and the accept expression both hold; an aggregator commits groups of `size`
(the last one smaller) or, streaming, all records at once, and a record-level error fails
that record only; past `max_failed_records` no new work starts and the status is
FAILED_PROCESS_RECORDS; ORDERED_SEQUENTIAL instances of a job run one at a time in creation
order. Record state is persisted per block after each step, so after a crash no step that
was persisted runs again for a record. How the orchestration decides: `shared.batch.plan`.

Modules: job (declarations), settings (settings section, per-job overrides), registry,
records (input parsing), source (a declared view as input), claims (instance ids),
loading (staging), sub_orchestration (staging from an activity), store (blobs), blocks
(running a block or a group), plan (the orchestration's decisions), result
(BatchJobResult), complete (the on-complete hook, once), instances (Table Storage rows),
liveness (whether an active row's instance still runs: the turn check, settling rows of
orchestrations that failed or were terminated), failures (the CSV report), retention (the
purge of finished instances and of those that never started), contacts (the
example job), jobs (the app's jobs: the event queue's asset-events, the enabled examples).
"""

import shared.config  # noqa: F401  (first: shared.config imports this package's settings)
from shared.batch.job import (
    AcceptPolicy,
    Aggregator,
    BatchJob,
    BatchRecord,
    BatchStep,
    SchedulingStrategy,
    StepFailure,
)
from shared.batch.registry import batch_jobs, register_batch_jobs
from shared.batch.source import BatchSource, SourceFilter

BATCH_ORCHESTRATOR = "batch_job"


def batch_durable_id(job: str, instance_id: str) -> str:
    """The durable instance id of batch instance `instance_id` of `job`."""
    return f"batch-{job}-{instance_id}"


__all__ = [
    "BATCH_ORCHESTRATOR",
    "AcceptPolicy",
    "Aggregator",
    "BatchJob",
    "BatchRecord",
    "BatchSource",
    "BatchStep",
    "SchedulingStrategy",
    "SourceFilter",
    "StepFailure",
    "batch_durable_id",
    "batch_jobs",
    "register_batch_jobs",
]
