"""The hourly purge of batch job instances (shared/batch/retention.py does the work)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import azure.functions as func

from activities.batch import batch_store, instances_table, orchestration_reader
from orchestrators.batch.orchestration import blueprint
from shared.batch import batch_jobs
from shared.batch.instances import index_earlier_rows
from shared.batch.retention import (
    purge_instances,
    purge_never_started,
    purgeable_instances,
    sweep_active_rows,
)
from shared.config import app_settings

log = logging.getLogger(__name__)

# Hourly, off the hour; each run purges at most this many instances per job (the next run
# goes on), so a backlog after a long retention change never makes one run long.
PURGE_SCHEDULE = "0 17 * * * *"
PURGE_LIMIT_PER_JOB = 500


@blueprint.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False)
@blueprint.durable_client_input(client_name="client")
async def batch_purge_finished(timer: func.TimerRequest,
                               client: df.DurableOrchestrationClient) -> None:
    """Instance rows written before index rows existed get theirs (once per job); active
    rows whose orchestration ended without its finish step are settled; then,
    past BATCH_INSTANCE_RETENTION, finished instances and those that never started go:
    row marked, blobs, history, row (shared/batch/retention.py)."""
    seconds = app_settings().batch.instance_retention
    retention = timedelta(seconds=seconds) if seconds > 0 else None
    table, store, now = instances_table(), batch_store(), datetime.now(UTC)
    for job in batch_jobs().values():
        await asyncio.to_thread(index_earlier_rows, table, job.name)
        never_started = await sweep_active_rows(table, store.container, job.name,
                                                orchestration_reader(client), now, retention)
        if retention is None:
            continue
        purged = await purge_never_started(table, store, store.container,
                                           never_started[:PURGE_LIMIT_PER_JOB],
                                           client.purge_instance_history, now)
        candidates = await asyncio.to_thread(purgeable_instances, table, job.name, now,
                                             retention, PURGE_LIMIT_PER_JOB)
        if candidates:
            purged += await purge_instances(table, store, candidates,
                                            client.purge_instance_history)
        if purged:
            log.info("batch %s: purged %d instance(s) finished (or never started) more "
                     "than %g s ago", job.name, purged, seconds)
