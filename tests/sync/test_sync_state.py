"""Watermark, lease and counters in real Table Storage (Azurite), under ETag conditions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.sql.keyset import Position
from shared.sync.lock import TickAction, decide_tick
from shared.sync.state import WatermarkConflict
from shared.sync.state.lease import LOCK_ROW, lease_from
from shared.sync.state.ticks import TICKS_ROW
from shared.sync.state.watermarks import WATERMARK_ROW

INITIAL = Position(datetime(1900, 1, 1), None)
T1 = datetime(2025, 1, 1, 10, 0)


def test_first_read_is_the_initial_watermark(state):
    watermark = state.watermarks.read("job-a", "timestamp", INITIAL)
    assert watermark.position == INITIAL and watermark.etag is None


def test_claim_then_advance_stores_cursor_and_key(state):
    claimed = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-1")
    state.watermarks.advance("job-a", "timestamp", claimed, Position(T1, (42,)), "run-1")
    stored = state.watermarks.read("job-a", "timestamp", INITIAL)
    assert stored.position == Position(T1, (42,))
    assert stored.run_id == "run-1"


def test_a_zombie_run_cannot_checkpoint_after_a_new_run_claimed(state):
    zombie = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-1")
    read_before_takeover = state.watermarks.read("job-a", "timestamp", INITIAL)
    state.watermarks.claim("job-a", "timestamp", INITIAL, "run-2")
    with pytest.raises(WatermarkConflict):
        state.watermarks.advance("job-a", "timestamp", read_before_takeover,
                                Position(T1, (1,)), "run-1")
    assert zombie.run_id == "run-1"
    assert state.watermarks.read("job-a", "timestamp", INITIAL).position == INITIAL


def test_the_watermark_never_moves_backwards(state):
    claimed = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-1")
    ahead = state.watermarks.advance("job-a", "timestamp", claimed, Position(T1, (5,)), "run-1")
    with pytest.raises(WatermarkConflict, match="backwards"):
        state.watermarks.advance("job-a", "timestamp", ahead, Position(T1, (4,)), "run-1")


def test_jobs_have_independent_watermarks(state):
    a = state.watermarks.claim("job-a", "version", Position(0), "run-a")
    state.watermarks.advance("job-a", "version", a, Position(10, (1,)), "run-a")
    assert state.watermarks.read("job-b", "version", Position(0)).position == Position(0)


def test_twenty_concurrent_ticks_acquire_the_lease_exactly_once(state):
    now = datetime.now(UTC)

    def tick(number: int) -> bool:
        seen = state.lease.read("job-a")
        decision = decide_tick(now, enabled=True, instance=None, lease=seen,
                               max_run_time=timedelta(minutes=5), min_interval=timedelta(0))
        if decision.action is not TickAction.START:
            return False
        return state.lease.acquire("job-a", seen, f"run-{number}", now,
                                   timedelta(minutes=5)) is not None

    with ThreadPoolExecutor(max_workers=20) as pool:
        won = list(pool.map(tick, range(20)))
    assert sum(won) == 1
    assert state.lease.read("job-a").run_id == f"run-{won.index(True)}"


def test_release_keeps_the_lease_for_the_min_interval(state):
    start = datetime.now(UTC)
    lease = state.lease.acquire("job-a", None, "run-1", start, timedelta(minutes=10))
    assert lease is not None
    assert state.lease.release("job-a", "run-1", start + timedelta(seconds=5),
                               timedelta(seconds=60))
    released = state.lease.read("job-a")
    assert released.locked_until == start + timedelta(seconds=60)
    # Another run's release does not touch it.
    assert not state.lease.release("job-a", "run-9", start, timedelta(0))


def test_an_expired_lease_can_be_taken_over(state):
    start = datetime.now(UTC) - timedelta(minutes=20)
    state.lease.acquire("job-a", None, "run-1", start, timedelta(minutes=10))
    seen = state.lease.read("job-a")
    assert state.lease.acquire("job-a", seen, "run-2", datetime.now(UTC),
                               timedelta(minutes=10)).run_id == "run-2"


def test_concurrent_tick_counts_add_up(state):
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda _: state.ticks.count("job-a", "skipped_busy"), range(20)))
    assert state.ticks.read("job-a")["SkippedBusy"] == 20


def test_runs_are_listed_newest_first(state):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for minute in range(3):
        state.runs.record("job-a", f"run-{minute}", base + timedelta(minutes=minute),
                         Outcome="succeeded")
    assert [run["RunId"] for run in state.runs.last("job-a", 2)] == ["run-2", "run-1"]


def test_two_jobs_lock_independently(state):
    now = datetime.now(UTC)
    assert state.lease.acquire("job-a", None, "run-a", now, timedelta(minutes=5))
    assert state.lease.acquire("job-b", None, "run-b", now, timedelta(minutes=5))
    assert state.lease.acquire("job-a", None, "run-c", now, timedelta(minutes=5)) is None
    assert (state.lease.read("job-a").run_id, state.lease.read("job-b").run_id) == (
        "run-a", "run-b")


def test_the_job_rows_come_in_one_read_absent_ones_as_none(state):
    rows = state.job_rows("job-a", WATERMARK_ROW, LOCK_ROW, TICKS_ROW)
    assert {key: row.entity for key, row in rows.items()} == {
        WATERMARK_ROW: None, LOCK_ROW: None, TICKS_ROW: None}

    now = datetime.now(UTC)
    claimed = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-1", rows[WATERMARK_ROW])
    lease = state.lease.acquire("job-a", lease_from(rows[LOCK_ROW].entity), "run-1", now,
                                timedelta(minutes=5))
    state.ticks.count("job-a", "started", now, rows[TICKS_ROW])

    again = state.job_rows("job-a", LOCK_ROW, WATERMARK_ROW)
    assert set(again) == {LOCK_ROW, WATERMARK_ROW}
    assert again[WATERMARK_ROW].entity.etag == claimed.etag
    assert lease_from(again[LOCK_ROW].entity) == lease
    assert state.ticks.read("job-a")["Started"] == 1


def test_a_claim_from_a_stale_read_reads_again_and_claims(state):
    seen = state.job_rows("job-a", WATERMARK_ROW)[WATERMARK_ROW]
    first = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-1")
    state.watermarks.advance("job-a", "timestamp", first, Position(T1, (7,)), "run-1")

    claimed = state.watermarks.claim("job-a", "timestamp", INITIAL, "run-2", seen)

    stored = state.watermarks.read("job-a", "timestamp", INITIAL)
    assert (stored.run_id, stored.position, stored.etag) == ("run-2", Position(T1, (7,)),
                                                             claimed.etag)


def test_a_release_from_a_stale_read_never_frees_a_lease_another_run_took(state):
    start = datetime.now(UTC) - timedelta(minutes=20)
    state.lease.acquire("job-a", None, "run-1", start, timedelta(minutes=10))
    seen = state.job_rows("job-a", LOCK_ROW)[LOCK_ROW]
    taken = state.lease.acquire("job-a", lease_from(seen.entity), "run-2", datetime.now(UTC),
                                timedelta(minutes=10))
    assert taken is not None

    assert not state.lease.release("job-a", "run-1", datetime.now(UTC), timedelta(0), seen)
    assert state.lease.read("job-a") == taken


def test_a_release_from_a_stale_read_of_its_own_lease_still_releases(state):
    start = datetime.now(UTC)
    state.lease.acquire("job-a", None, "run-1", start, timedelta(minutes=10))
    seen = state.job_rows("job-a", LOCK_ROW)[LOCK_ROW]
    assert state.lease.release("job-a", "run-1", start, timedelta(seconds=1))  # changes it

    assert state.lease.release("job-a", "run-1", start, timedelta(seconds=30), seen)
    assert state.lease.read("job-a").locked_until == start + timedelta(seconds=30)


def test_tick_counts_from_one_stale_read_all_add_up(state):
    seen = state.job_rows("job-a", TICKS_ROW)[TICKS_ROW]
    for _ in range(3):
        state.ticks.count("job-a", "skipped_held", seen=seen)
    assert state.ticks.read("job-a")["SkippedHeld"] == 3
