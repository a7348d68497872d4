"""The flat table of staged records' hashes: a record added twice is told, others never."""

from __future__ import annotations

import random

from shared.sync.record_hashes import RecordHashes


def test_a_hash_added_again_is_refused_and_new_ones_are_kept_across_growth() -> None:
    hashes = RecordHashes()
    draws = random.Random(7)
    values = list({draws.getrandbits(64) - (1 << 63) for _ in range(200_000)})
    assert all(hashes.add_new(value) for value in values)  # grows from 65,536 slots
    assert len(hashes) == len(values)
    assert not any(hashes.add_new(value) for value in values[::997])
    assert len(hashes) == len(values)


def test_hashes_of_record_keys_as_python_makes_them() -> None:
    hashes = RecordHashes()
    keys = [hash((n, f"ASSET-{n}")) for n in range(1000)] + [hash(()), 0, -1]
    assert all(hashes.add_new(key) for key in keys)
    assert not hashes.add_new(hash((5, "ASSET-5")))
    assert not hashes.add_new(-1)


def test_slots_that_collide_probe_on() -> None:
    hashes = RecordHashes()
    # Equal low bits: the same first slot for all of them.
    colliding = [n << 32 for n in range(1, 50)]
    assert all(hashes.add_new(value) for value in colliding)
    assert [hashes.add_new(value) for value in colliding] == [False] * 49
