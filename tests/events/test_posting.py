"""A post's transactions and the rows they meet, read by key range on Azurite."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from shared.events.collapse import collapse
from shared.events.depth import DepthCounter
from shared.events.posting import (
    TRANSACTION_BYTES,
    TRANSACTION_LIMIT,
    read_waiting_rows,
    transaction_chunks,
)
from shared.events.queue import EventQueue, PartlyStored
from shared.events.validation import Event, Operation
from shared.storage.key_ranges import RANGE_ROWS_PER_KEY
from shared.storage.tables import safe_key

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)
UP = Operation.UPSERT
POOL = ThreadPoolExecutor(max_workers=4)


def test_chunks_hold_one_partition_in_key_order_within_the_limits():
    events = [Event("Asset", str(n), UP) for n in range(250, 0, -1)]
    events += [Event("Other", str(n), UP, '"' + "x" * 900_000 + '"') for n in range(5)]

    chunks = list(transaction_chunks(events))

    assert [len(chunk) for chunk in chunks] == [TRANSACTION_LIMIT, TRANSACTION_LIMIT, 52, 3, 2]
    for chunk in chunks:
        assert len({event.object for event in chunk}) == 1
        assert [event.id for event in chunk] == sorted(event.id for event in chunk)
        assert sum(len(event.payload or "") for event in chunk) <= TRANSACTION_BYTES
    assert sorted(event.id for chunk in chunks[:3] for event in chunk) == sorted(
        str(n) for n in range(1, 251))


def test_the_rows_read_are_those_stored_with_their_versions_and_etags(queue: EventQueue):
    queue.store([Event("Asset", str(n), UP, None, n) for n in (2, 4, 6)], NOW)
    queue.store([Event("Asset", "5", UP)], NOW)

    found = read_waiting_rows(queue.events, "Asset", ["1", "2", "3", "4", "5", "7"], POOL)

    assert sorted(found) == ["2", "4", "5"]
    assert [found[key].values.get("Version") for key in ("2", "4", "5")] == ["2", "4", None]
    assert found["4"].etag == queue.events.get_entity("Asset", "4").metadata["etag"]


def test_a_sparse_range_is_read_in_part_and_the_keys_beyond_one_by_one(queue: EventQueue):
    # 300 rows between the first and the last key looked for: far beyond the range budget.
    queue.store([Event("Asset", str(n), UP) for n in range(1000, 1300)], NOW)
    wanted = ["1000", "1299", "13", "9"]

    found = read_waiting_rows(queue.events, "Asset", wanted, POOL)

    assert RANGE_ROWS_PER_KEY * len(wanted) < 300
    assert sorted(found) == ["1000", "1299"]


def test_ids_escaped_into_the_counter_rows_key_range_are_read_as_events(queue: EventQueue):
    ids = ["%a", "%count%01", "zz"]
    # The store writes counter rows (`%count%..`), inside the range `%25a`..`zz`.
    queue.store([Event("Asset", record_id, UP, None, 1) for record_id in ids], NOW)

    found = read_waiting_rows(queue.events, "Asset", [safe_key(i) for i in ids], POOL)

    assert sorted(found) == sorted(safe_key(record_id) for record_id in ids)
    assert {entity.values["RowKey"] for entity in found.values()} == set(found)


def test_a_large_post_is_stored_and_counted_and_a_second_post_collapses_onto_it(
        queue: EventQueue):
    assert queue.calibrate_depth()
    first = queue.store([Event("Asset", str(n), UP, None, 1) for n in range(1, 1001)], NOW)
    again = queue.store([Event("Asset", str(n), UP, None, 2 if n % 2 else 0)
                         for n in range(1, 1001)], NOW)

    assert (first.stored, first.superseded) == (1000, 0)
    assert (again.stored, again.superseded) == (500, 500)
    assert queue.counted_depth() == queue.depth() == 1000
    versions = {row["RowKey"]: row["Version"]
                for row in queue.events.query_entities("PartitionKey eq 'Asset'")
                if "Version" in row}
    assert versions == {str(n): "2" if n % 2 else "1" for n in range(1, 1001)}


def test_large_posts_at_once_over_shared_records_leave_the_newest_and_exact_counts(
        queue: EventQueue):
    """Posts of several transactions each, over two objects, side by side and crossing one
    another's records: each record keeps its newest version and each count its rows."""
    rng = random.Random(11)
    for partition in ("Asset", "Other"):
        assert DepthCounter(queue.events).calibrate(partition)
    posts = [[Event(rng.choice(("Asset", "Other")), str(rng.randint(1, 400)), UP, None,
                    rng.randint(0, 1000)) for _ in range(450)] for _ in range(8)]
    newest: dict[tuple[str, str], int] = {}
    for event in (event for post in posts for event in post):
        newest[event.key] = max(newest.get(event.key, -1), event.version or 0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda post: queue.store(collapse(post), NOW), posts))

    stored = {(row["Object"], row["RecordId"]): int(row["Version"])
              for row in queue.events.list_entities() if "Object" in row}
    assert stored == newest
    for partition in ("Asset", "Other"):
        assert queue.counter.count(partition) == sum(key[0] == partition for key in newest)


def test_a_failed_transaction_leaves_the_others_stored_and_says_how_many(queue: EventQueue):
    # An entity beyond Table Storage's 1 MiB (validation refuses such a payload first).
    too_large = Event("Other", "1", UP, '"' + "x" * 1_200_000 + '"')
    events = [Event("Asset", str(n), UP) for n in range(1, 151)] + [too_large]

    with pytest.raises(PartlyStored) as failure:
        queue.store(events, NOW)

    assert (failure.value.kept, failure.value.total) == (150, 151)
    assert queue.depth() == 150


def test_keys_beyond_the_basic_plane_are_read_in_the_tables_order(queue: EventQueue):
    ids = ["a\U0001f600", "a\ufb01", "a\u00e9", "b"]  # UTF-16 order: é, 😀, ﬁ, b
    queue.store([Event("Other", record_id, UP, None, 1) for record_id in ids[:3]], NOW)
    # Rows that stop the range read among the 😀 keys: `aﬁ`, after them in the table's
    # order (before them in Python's), is not passed yet and is looked up on its own.
    queue.store([Event("Other", f"a\U0001f600{n}", UP) for n in range(40)], NOW)

    found = read_waiting_rows(queue.events, "Other", [safe_key(i) for i in ids], POOL)

    assert sorted(found) == sorted(safe_key(record_id) for record_id in ids[:3])
