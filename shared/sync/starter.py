"""A timer tick: look at the singleton instance and the lease, then start, skip or terminate.

The decision itself is `lock.decide_tick` (pure); this module gathers what it needs
through the durable client and the state tables and carries it out. Every outcome is
logged and counted in the job's `ticks` row; once a run is started, a failure to count it
is logged (`sync tick not counted`) and the tick is still the start it was.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.crash_points import crash_point, fault_point
from shared.durable import json_object, read_status
from shared.log_fields import log_event
from shared.storage.tables import RowAsRead
from shared.sync.job import SyncJob
from shared.sync.lock import InstanceSnapshot, TickAction, TickDecision, decide_tick
from shared.sync.messages import RunInput
from shared.sync.state import SyncState, utc_now
from shared.sync.state.lease import LOCK_ROW, lease_from
from shared.sync.state.ticks import TICKS_ROW

# The lease is taken for a new run, the run is not started (start_new not called).
RUN_START_AFTER_LEASE = "sync.start.after_lease"
# A fault point: the run is started, counting its tick (a Table Storage write) fails.
RUN_START_AFTER_START_NEW = "sync.start.after_start_new"

log = logging.getLogger(__name__)

RUN_ORCHESTRATOR = "sync_run"


def instance_snapshot(status: Any) -> InstanceSnapshot | None:
    """From the SDK's DurableOrchestrationStatus (falsy when the instance does not exist)."""
    if not status:
        return None
    runtime = status.runtime_status
    runtime_name = getattr(runtime, "value", runtime)
    run = json_object(status.input_)
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    run_id = (run or {}).get("run_id") or custom.get("run_id")
    started = (run or {}).get("started_at") or custom.get("started_at")
    return InstanceSnapshot(
        runtime_status=str(runtime_name) if runtime_name else None,
        run_id=run_id,
        run_started_at=datetime.fromisoformat(started) if started else None,
        created_time=status.created_time,
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


async def run_tick(
    job: SyncJob, client: Any, state: SyncState, run_input: Callable[[str, datetime], RunInput],
    now: datetime | None = None,
) -> TickDecision:
    """One tick of `job`'s timer. `run_input(run_id, started_at)` builds the run's input.

    Every storage call is made on a thread: the tick runs on the worker's event loop, which
    meanwhile serves other invocations (the run this tick starts, among them)."""
    now = now or utc_now()
    # The instance and the lease are read side by side (the lease on a thread): a run
    # starts one storage round trip sooner. Reading the lease before the instance ends
    # changes nothing: its acquire below is guarded by the ETag read here. The tick
    # counters' row comes in the same query, so counting the tick need not read it again
    # (its write is guarded by that ETag too).
    status, rows = await asyncio.gather(
        read_status(client, job.instance_id, show_input=True),
        asyncio.to_thread(state.job_rows, job.name, LOCK_ROW, TICKS_ROW))
    lease, ticks = lease_from(rows[LOCK_ROW].entity), rows[TICKS_ROW]
    instance = instance_snapshot(status)
    if instance is not None and instance.runtime_status in ENDED_ELSEWHERE:  # else no I/O
        await asyncio.to_thread(close_run_ended_elsewhere, job, state, instance, now)
    decision = decide_tick(
        now, enabled=job.enabled, instance=instance, lease=lease,
        max_run_time=job.max_run_time, min_interval=job.min_interval,
    )
    if decision.action is TickAction.SKIP_DISABLED:
        log.debug("sync job %s: %s", job.name, decision.reason)
        return decision
    if decision.action is TickAction.TERMINATE_STUCK:
        assert instance is not None
        await client.terminate(job.instance_id, decision.reason)
        if instance.run_id and instance.run_started_at:
            await asyncio.to_thread(functools.partial(
                state.runs.record, job.name, instance.run_id, instance.run_started_at,
                Outcome="terminated", EndedAt=now, Error=decision.reason,
            ))
        log_event(log, "sync tick", level=logging.WARNING, job=job.name,
                  action=decision.action.value, run_id=instance.run_id, reason=decision.reason)
        await asyncio.to_thread(state.ticks.count, job.name, decision.action.value, now,
                                ticks)
        return decision
    if decision.action is not TickAction.START:
        log_event(log, "sync tick", job=job.name, action=decision.action.value,
                  reason=decision.reason)
        await asyncio.to_thread(state.ticks.count, job.name, decision.action.value, now,
                                ticks)
        return decision

    run_id = new_run_id()
    acquired = await asyncio.to_thread(state.lease.acquire, job.name, lease, run_id, now,
                                       job.max_run_time)
    if acquired is None:
        decision = TickDecision(
            TickAction.SKIP_BUSY, "another tick took the lock first, tick skipped"
        )
        log_event(log, "sync tick", job=job.name, action=decision.action.value,
                  reason=decision.reason)
        await asyncio.to_thread(state.ticks.count, job.name, decision.action.value, now,
                                ticks)
        return decision
    crash_point(RUN_START_AFTER_LEASE)
    try:
        await client.start_new(RUN_ORCHESTRATOR, job.instance_id, run_input(run_id, now).to_json())
    except Exception as error:  # the SDK raises a bare Exception carrying the host's answer
        await asyncio.to_thread(state.lease.release, job.name, run_id, now, timedelta(0))
        if not start_was_refused(error):
            raise  # the host or its storage failed: the tick fails, visibly, lock released
        # Under NonRunningStates the backend refuses a start over a busy instance: that is
        # the race with a start made elsewhere, so this tick is a skip, not a failure.
        decision = TickDecision(
            TickAction.SKIP_BUSY,
            f"start of run {run_id} refused ({str(error)[:200]}): previous run still "
            "running, tick skipped",
        )
        log_event(log, "sync tick", job=job.name, action=decision.action.value,
                  reason=decision.reason)
        await asyncio.to_thread(state.ticks.count, job.name, decision.action.value, now,
                                ticks)
        return decision
    log_event(log, "sync tick", job=job.name, action=TickAction.START.value, run_id=run_id,
              instance_id=job.instance_id)
    try:
        await asyncio.to_thread(count_started_tick, job, state, now, ticks)
    except Exception as error:
        # The run is started and holds the lease: the tick is a start, whatever its
        # bookkeeping did. Failing it would tell a caller to try again (and get a 409)
        # and an operator that nothing started.
        log_event(log, "sync tick not counted", level=logging.WARNING, exc_info=error,
                  job=job.name, run_id=run_id,
                  not_written=f"the {TickAction.START.value} counter of the {TICKS_ROW} row",
                  error_type=type(error).__name__)
    return TickDecision(TickAction.START, f"started run {run_id}", run_id)


def count_started_tick(job: SyncJob, state: SyncState, now: datetime,
                       ticks: RowAsRead) -> None:
    """The storage write a tick makes after its run was started."""
    fault_point(RUN_START_AFTER_START_NEW)
    state.ticks.count(job.name, TickAction.START.value, now, ticks)


def start_was_refused(error: Exception) -> bool:
    """Whether `start_new` failed because a non-terminal instance holds the id.

    The Durable extension answers such a start with "An Orchestration instance with the
    status Running already exists." (409 locally, the SDK turns either into an Exception).
    """
    return "already exists" in str(error)


def close_run_ended_elsewhere(
    job: SyncJob, state: SyncState, instance: InstanceSnapshot | None, now: datetime
) -> None:
    """A run terminated (or crashed) outside its own code never wrote its end: write it."""
    if instance is None or instance.runtime_status not in ENDED_ELSEWHERE:
        return
    if not (instance.run_id and instance.run_started_at):
        return
    outcome = ENDED_ELSEWHERE[instance.runtime_status]
    if state.runs.close_open(
        job.name, instance.run_id, instance.run_started_at, outcome, now,
        f"instance {job.instance_id} ended {instance.runtime_status} without recording the "
        "run's end (terminated through the Durable API?)",
    ):
        log_event(log, "sync run ended", level=logging.WARNING, job=job.name,
                  run_id=instance.run_id, outcome=outcome,
                  reason=f"instance ended {instance.runtime_status} outside the run")


# Durable states in which a run can end without its orchestration writing the run's end.
ENDED_ELSEWHERE = {"Terminated": "terminated", "Failed": "failed", "Canceled": "terminated"}
