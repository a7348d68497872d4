"""The queue's counted depth on Azurite: exact under concurrent posts, drains and retries,
calibrated only when a partition is empty."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from azure.data.tables import UpdateMode

from shared.events.messages import EventOutcome
from shared.events.queue import EventQueue
from shared.events.validation import Event, Operation

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)
UP = Operation.UPSERT


def events(rng: random.Random, count: int, records: int) -> list[Event]:
    return [Event("Asset", str(rng.randint(1, records)), UP, None,
                  rng.choice([None, rng.randint(0, 50)]) if rng.random() < 0.5 else None)
            for _ in range(count)]


def drain_once(queue: EventQueue, rng: random.Random) -> int:
    """Take a batch and settle it: most done, some failed (retried, then dead-lettered)."""
    batch = queue.take_batch(rng.randint(5, 60), None, NOW)
    outcomes = [EventOutcome(True) if rng.random() < 0.8 else EventOutcome(False, "X", "no")
                for _ in batch.events]
    # retry_delay 0: a failed event is due again at once, max_attempts 2: then dead-lettered.
    queue.settle(batch.events, outcomes, 2, 0.0, NOW)
    return len(batch.events)


def test_the_count_of_a_new_queue_starts_when_it_is_seen_empty(queue: EventQueue):
    assert queue.counted_depth() is None
    assert queue.calibrate_depth()

    queue.store([Event("Asset", str(n), UP, None, None) for n in range(1, 251)], NOW)

    assert queue.counted_depth() == 250 == queue.depth()


def test_the_count_stays_exact_under_concurrent_posts_and_drains(queue: EventQueue):
    assert queue.calibrate_depth()
    rng = random.Random(11)
    posts = [events(rng, rng.randint(1, 100), 120) for _ in range(20)]
    stop = threading.Event()

    def drain() -> None:
        local = random.Random(threading.get_ident())
        while not stop.is_set():
            drain_once(queue, local)

    with ThreadPoolExecutor(max_workers=10) as pool:
        drainers = [pool.submit(drain) for _ in range(2)]
        try:
            list(pool.map(lambda post: queue.store(post, NOW), posts))
        finally:
            stop.set()
        for drainer in drainers:
            drainer.result()

    assert queue.counted_depth() == queue.depth()
    while drain_once(queue, rng):
        pass
    assert queue.counted_depth() == queue.depth() == 0


def test_a_settle_tried_again_removes_nothing_twice(queue: EventQueue):
    assert queue.calibrate_depth()
    queue.store([Event("Asset", str(n), UP, None, n) for n in range(1, 31)], NOW)
    batch = queue.take_batch(20, None, NOW)
    done = [EventOutcome(True)] * len(batch.events)

    queue.settle(batch.events, done, 5, 1.0, NOW)
    queue.settle(batch.events, done, 5, 1.0, NOW)

    assert queue.counted_depth() == queue.depth() == 10


def test_rows_stored_before_the_counting_wait_for_an_empty_queue(queue: EventQueue):
    # As a version without the counters stored them.
    for n in range(1, 6):
        queue.events.upsert_entity({"PartitionKey": "Asset", "RowKey": str(n), "Object": "Asset",
                                    "RecordId": str(n), "Operation": "upsert", "Attempts": 0,
                                    "EnqueuedAt": NOW, "RetryAt": NOW}, mode=UpdateMode.REPLACE)
    queue.store([Event("Asset", "6", UP, None, None)], NOW)

    assert not queue.calibrate_depth()
    assert queue.counted_depth() is None
    batch = queue.take_batch(100, None, NOW)
    queue.settle(batch.events, [EventOutcome(True)] * len(batch.events), 5, 1.0, NOW)
    assert queue.calibrate_depth()
    queue.store([Event("Asset", str(n), UP, None, None) for n in range(1, 4)], NOW)
    assert queue.counted_depth() == queue.depth() == 3


def test_calibrated_while_posts_and_drains_run_the_count_is_exact(queue: EventQueue):
    rng = random.Random(5)
    posts = [events(rng, rng.randint(1, 20), 30) for _ in range(60)]
    stop = threading.Event()
    calibrated = threading.Event()

    def calibrate() -> None:
        while not stop.is_set() and not calibrated.is_set():
            if queue.calibrate_depth():
                calibrated.set()

    def post_and_drain(post: list[Event]) -> None:
        queue.store(post, NOW)
        drain_once(queue, random.Random(len(post)))

    with ThreadPoolExecutor(max_workers=6) as pool:
        calibrator = pool.submit(calibrate)
        try:
            list(pool.map(post_and_drain, posts))
        finally:
            stop.set()
        calibrator.result()

    while drain_once(queue, rng):
        pass
    if not calibrated.is_set():
        assert queue.calibrate_depth()
    queue.store(events(rng, 40, 30), NOW)
    assert queue.counted_depth() == queue.depth() > 0
