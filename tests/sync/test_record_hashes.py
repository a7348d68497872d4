"""The table of staged records' hashes: a record added twice is always told, another is
taken for it only when both its first slot and its fingerprint are equal, and the table
refuses a new record past its limit."""

from __future__ import annotations

import random

import pytest

from shared.sync.record_hashes import RecordHashes, RecordHashesFull


def test_a_hash_added_again_is_refused_and_new_ones_are_kept_up_to_the_limit() -> None:
    draws = random.Random(7)
    values = list({draws.getrandbits(64) - (1 << 63) for _ in range(200_000)})
    hashes = RecordHashes(len(values))
    assert all(hashes.add_new(value) for value in values)
    assert len(hashes) == len(values)
    assert hashes.full
    assert not any(hashes.add_new(value) for value in values[::997])
    assert len(hashes) == len(values)


def test_hashes_of_record_keys_as_python_makes_them() -> None:
    hashes = RecordHashes(2000)
    keys = [hash((n, f"ASSET-{n}")) for n in range(1000)] + [hash(()), 0, -1]
    assert all(hashes.add_new(key) for key in keys)
    assert not hashes.add_new(hash((5, "ASSET-5")))
    assert not hashes.add_new(-1)
    assert not hashes.full


def test_hashes_with_one_first_slot_probe_on_and_wrap_around_the_end() -> None:
    hashes = RecordHashes(60)
    # Equal high bits (the first slot, the table's last) and distinct fingerprints.
    colliding = [(0xFFFFFFFF << 32) | n for n in range(1, 50)]
    assert all(hashes.add_new(value) for value in colliding)
    assert [hashes.add_new(value) for value in colliding] == [False] * 49
    assert len(hashes) == 49


def test_a_hash_with_the_same_first_slot_and_fingerprint_is_taken_for_a_staged_one() -> None:
    hashes = RecordHashes(10)
    assert hashes.add_new(5)
    # Another record, its hash differing only in bits that pick no slot of ten: refused,
    # the harmless side (the round ends early).
    assert not hashes.add_new(5 | (1 << 40))
    # A fingerprint of 0 is kept as 1, as empty slots are 0.
    assert hashes.add_new(1 << 63)
    assert not hashes.add_new((1 << 63) | 1)
    assert len(hashes) == 2


def test_a_full_table_tells_the_staged_and_refuses_a_new_record() -> None:
    hashes = RecordHashes(3)
    assert [hashes.add_new(value) for value in (11, 22, 33)] == [True] * 3
    assert hashes.full
    assert not hashes.add_new(22)
    with pytest.raises(RecordHashesFull):
        hashes.add_new(44)
    assert len(hashes) == 3
    assert not hashes.add_new(33)


def test_a_round_tracks_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RecordHashes(0)
