"""The tick decision (pure): start, skip busy, skip held, terminate stuck, disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.sync.lock import START_GRACE, InstanceSnapshot, TickAction, decide_tick
from shared.sync.state import Lease

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MAX_RUN = timedelta(minutes=10)
MIN_INTERVAL = timedelta(minutes=2)


def decide(instance=None, lease=None, enabled=True):
    return decide_tick(NOW, enabled=enabled, instance=instance, lease=lease,
                       max_run_time=MAX_RUN, min_interval=MIN_INTERVAL)


def lease(run_id="r1", locked_at=NOW - timedelta(minutes=1), until=None):
    return Lease(until or locked_at + MAX_RUN, locked_at, run_id, "etag")


def test_first_tick_ever_starts():
    assert decide().action is TickAction.START


def test_every_free_state_starts_once_the_lease_is_free():
    for status in ("Completed", "Failed", "Terminated", "Canceled"):
        instance = InstanceSnapshot(status, "r1", NOW - timedelta(minutes=5))
        done = lease("r1", NOW - timedelta(minutes=5), until=NOW - timedelta(minutes=3))
        assert decide(instance, done).action is TickAction.START, status


def test_every_busy_state_skips():
    for status in ("Pending", "Running", "ContinuedAsNew", "Suspended"):
        instance = InstanceSnapshot(status, "r1", NOW - timedelta(minutes=1))
        decision = decide(instance, lease())
        assert decision.action is TickAction.SKIP_BUSY, status
        assert "previous run r1 still running" in decision.reason


def test_a_run_older_than_the_max_run_time_is_terminated_with_a_reason():
    instance = InstanceSnapshot("Running", "r1", NOW - MAX_RUN - timedelta(seconds=1))
    decision = decide(instance, lease("r1", NOW - MAX_RUN - timedelta(seconds=1)))
    assert decision.action is TickAction.TERMINATE_STUCK
    assert "r1" in decision.reason and "max run time of 600 s" in decision.reason


def test_run_start_falls_back_to_the_lease_then_to_the_creation_time():
    stuck_lease = lease("r1", NOW - timedelta(minutes=11))
    assert decide(InstanceSnapshot("Pending", "r1"), stuck_lease).action \
        is TickAction.TERMINATE_STUCK
    old = InstanceSnapshot("Running", None, None, created_time=NOW - timedelta(hours=1))
    assert decide(old, None).action is TickAction.TERMINATE_STUCK


def test_min_interval_holds_after_a_fast_run():
    instance = InstanceSnapshot("Completed", "r1", NOW - timedelta(seconds=30))
    released = lease("r1", NOW - timedelta(seconds=30), until=NOW + timedelta(seconds=90))
    decision = decide(instance, released)
    assert decision.action is TickAction.SKIP_HELD
    assert "min interval" in decision.reason


def test_a_run_that_died_without_releasing_holds_only_the_min_interval():
    # The run failed hard and never released: its lease says held for the max run time.
    instance = InstanceSnapshot("Failed", "r1", NOW - timedelta(minutes=3))
    unreleased = lease("r1", NOW - timedelta(minutes=3))
    assert decide(instance, unreleased).action is TickAction.START


def test_a_lease_taken_by_another_starter_is_respected():
    instance = InstanceSnapshot("Completed", "r1", NOW - timedelta(minutes=30))
    taken = lease("r2", NOW - timedelta(seconds=1))
    decision = decide(instance, taken)
    assert decision.action is TickAction.SKIP_HELD
    assert "r2" in decision.reason


def test_disabled_job_never_starts():
    assert decide(enabled=False).action is TickAction.SKIP_DISABLED


def test_a_lease_whose_run_never_started_is_free_after_the_start_grace():
    # Its tick died between taking the lease and starting the orchestration.
    orphan = lease("r2", NOW - START_GRACE - timedelta(seconds=1))
    assert decide(None, orphan).action is TickAction.START
    previous = InstanceSnapshot("Completed", "r1", NOW - timedelta(minutes=30))
    assert decide(previous, orphan).action is TickAction.START
    # ... but the min interval since the last run that did start still holds.
    recent = InstanceSnapshot("Completed", "r1", NOW - timedelta(seconds=30))
    decision = decide(recent, orphan)
    assert decision.action is TickAction.SKIP_HELD
    # Within the grace the start may still be under way elsewhere.
    starting = lease("r2", NOW - START_GRACE + timedelta(seconds=1))
    assert decide(previous, starting).action is TickAction.SKIP_HELD
