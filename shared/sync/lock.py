"""What a timer tick does, decided from what it saw: a pure function, no I/O.

The lock is two things that must agree: the durable instance `sync-<job>` (busy while a
run executes) and the lease row (ShedLock semantics: held for at most the max run time,
and for at least the min interval after a start). The tick starts a run only when the
instance is free *and* the lease is free; it commits the start by writing the lease with
the ETag it read, so of many concurrent ticks exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from shared.answer_json import utc_text
from shared.durable import BUSY_STATES, TERMINAL_STATES
from shared.sync.state import Lease

# A tick starts the orchestration within moments of taking the lease. A lease whose run
# has not appeared on the instance this long after it was taken never will (its tick
# crashed in between): the next tick frees it instead of waiting for the max run time.
START_GRACE = timedelta(seconds=10)


class TickAction(Enum):
    START = "started"
    SKIP_BUSY = "skipped_busy"
    SKIP_HELD = "skipped_held"
    TERMINATE_STUCK = "terminated"
    SKIP_DISABLED = "skipped_disabled"


class LeaseHold(Enum):
    """Why a lease still holds after its tick: what a skipped_held tick waited for."""

    MIN_INTERVAL = "min_interval"  # the run ended; the min interval since its start has not
    LEASE = "lease"  # a start is under way, or the run has not released it yet


@dataclass(frozen=True)
class InstanceSnapshot:
    """The singleton instance as `get_status` showed it (None fields: unknown)."""

    runtime_status: str | None
    run_id: str | None = None
    run_started_at: datetime | None = None
    created_time: datetime | None = None

    @property
    def busy(self) -> bool:
        return self.runtime_status in BUSY_STATES


@dataclass(frozen=True)
class TickDecision:
    action: TickAction
    reason: str
    run_id: str | None = None  # the run started, when action is START and it did start
    hold: LeaseHold | None = None  # what holds the lease, when action is SKIP_HELD


def decide_tick(
    now: datetime,
    *,
    enabled: bool,
    instance: InstanceSnapshot | None,
    lease: Lease | None,
    max_run_time: timedelta,
    min_interval: timedelta,
) -> TickDecision:
    if not enabled:
        return TickDecision(TickAction.SKIP_DISABLED, "job is disabled, tick skipped")
    if instance is not None and instance.busy:
        started = instance.run_started_at
        if started is None and lease is not None and lease.run_id == instance.run_id:
            started = lease.locked_at
        started = started or instance.created_time
        if started is not None and now - started > max_run_time:
            return TickDecision(
                TickAction.TERMINATE_STUCK,
                f"run {instance.run_id or '?'} started at {utc_text(started)} exceeded the "
                f"max run time of {_duration(max_run_time)}; terminated so the next tick can "
                "start a fresh run",
            )
        return TickDecision(
            TickAction.SKIP_BUSY,
            f"previous run {instance.run_id or '?'} still running "
            f"({instance.runtime_status}), tick skipped",
        )
    if lease is not None:
        held_until = lease.locked_until
        run_ended = (
            instance is not None and instance.runtime_status in TERMINAL_STATES
            and instance.run_id == lease.run_id
        )
        never_started = (
            not run_ended and (instance is None or instance.run_id != lease.run_id)
            and now - lease.locked_at > START_GRACE
        )
        if run_ended:
            # The lease's run is over: only the min interval still holds it, even if the
            # run died without releasing it.
            held_until = min(held_until, lease.locked_at + min_interval)
        elif never_started:
            # Its tick died between the lease and the start: only the min interval since
            # the last run that did start still holds.
            previous = instance.run_started_at if instance is not None else None
            held_until = min(held_until, previous + min_interval if previous else now)
        if held_until > now:
            why = (
                f"min interval of {_duration(min_interval)} since run {lease.run_id} started"
                if run_ended
                else f"lease held by run {lease.run_id} (a start is under way or it has not "
                "released yet)"
            )
            return TickDecision(
                TickAction.SKIP_HELD,
                f"{why}; next start allowed at {utc_text(held_until)}, tick skipped",
                hold=LeaseHold.MIN_INTERVAL if run_ended else LeaseHold.LEASE,
            )
    return TickDecision(TickAction.START, "lock free: a tick starts a run")


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g} s"
