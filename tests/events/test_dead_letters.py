"""Dead letters on Azurite: listed with their error, replayed into the queue once, never
over a newer event; the replay request checked as a post is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.events import queue as queue_module
from shared.events.dead_letters import (
    MAX_LETTERS,
    LetterSelection,
    list_dead_letters,
    parse_selection,
    replay_dead_letters,
)
from shared.events.messages import EventOutcome
from shared.events.queue import EventQueue, dead_letter_key
from shared.events.settling import Settled
from shared.events.validation import Event, EventError, Operation

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
FAILED = EventOutcome(False, "SourceRowMissing", "upsert: no row with Asset_ID")


def dead_letter(queue: EventQueue, *events: Event) -> None:
    queue.store(list(events), NOW)
    taken = queue.take_batch(100, None, NOW).events
    assert queue.settle(taken, [FAILED] * len(taken), 1, 1.0, NOW).dead_lettered == len(events)


def test_a_dead_letter_is_listed_with_its_error_and_replayed_with_fresh_attempts(
        queue: EventQueue):
    dead_letter(queue, Event("Asset", "7", Operation.UPSERT, '{"why": "test"}', 3),
                Event("Asset", "8", Operation.DELETE))

    letters, complete = list_dead_letters(queue, "Asset")
    assert complete and [(letter.id, letter.version) for letter in letters] == [
        ("7", 3), ("8", None)]
    assert letters[0].to_answer()["errorCode"] == "SourceRowMissing"
    assert letters[0].to_answer()["payload"] == {"why": "test"}

    replayed = replay_dead_letters(queue, "Asset", ["7"], LATER)

    assert (replayed.replayed, replayed.superseded, replayed.letters) == (1, 0, 1)
    [ref] = queue.take_batch(10, None, LATER).events
    assert (ref.id, ref.version, ref.attempts) == ("7", 3, 0)
    assert [letter.id for letter in list_dead_letters(queue, "Asset")[0]] == ["8"]
    assert queue.counted_depth() in (None, 1) and queue.depth() == 1


def test_a_replay_never_replaces_a_newer_event_waiting_for_the_record(queue: EventQueue):
    dead_letter(queue, Event("Asset", "1", Operation.DELETE),
                Event("Asset", "2", Operation.UPSERT, None, 4))
    queue.store([Event("Asset", "1", Operation.UPSERT), Event("Asset", "2", Operation.UPSERT,
                                                             None, 5)], LATER)

    replayed = replay_dead_letters(queue, "Asset", None, LATER)

    assert (replayed.replayed, replayed.superseded, replayed.letters) == (0, 2, 2)
    waiting = {ref.id: (ref.operation, ref.version)
               for ref in queue.take_batch(10, None, LATER).events}
    assert waiting == {"1": (Operation.UPSERT, None), "2": (Operation.UPSERT, 5)}
    assert list_dead_letters(queue, "Asset") == ([], True)


def test_a_replay_run_again_after_a_crash_queues_the_event_once(queue: EventQueue):
    dead_letter(queue, Event("Asset", "3", Operation.UPSERT, None, 2))
    [letter] = list_dead_letters(queue, "Asset")[0]
    # A crash after the event was stored again, before its letter was removed:
    assert queue.requeue(letter.event, LATER, letter.row_key)

    replayed = replay_dead_letters(queue, "Asset", None, LATER)

    assert (replayed.replayed, replayed.letters) == (1, 1)
    assert [(ref.id, ref.version) for ref in queue.take_batch(10, None, LATER).events] == [
        ("3", 2)]
    assert queue.depth() == 1


def test_a_replay_request_names_one_known_object_and_valid_ids():
    assert parse_selection({"object": "Asset"}) == LetterSelection("Asset")
    assert parse_selection({"object": "Asset", "ids": [17, "018"]}) == LetterSelection(
        "Asset", ["17", "18"])
    refused = [parse_selection(body) for body in (
        [], {"ids": [1]}, {"object": "Invoice"}, {"object": "Asset", "ids": []},
        {"object": "Asset", "ids": "17"}, {"object": "Asset", "ids": [1, "x"]},
        {"object": "Asset", "all": True})]
    assert all(isinstance(error, EventError) for error in refused)
    assert [error.code for error in refused if isinstance(error, EventError)] == [
        "INVALID_BODY", "MISSING_FIELD", "UNKNOWN_OBJECT", "INVALID_IDS", "INVALID_IDS",
        "INVALID_ID", "UNKNOWN_FIELD"]


def test_a_replay_while_the_drain_moves_the_same_event_to_the_letters_loses_nothing(
        queue: EventQueue):
    """The drain writes the letter, then removes the event: a replay in between finds the
    event itself still waiting (its letter is named after it) and queues it again."""
    queue.store([Event("Asset", "4", Operation.DELETE)], NOW)
    [ref] = queue.take_batch(10, None, NOW).events
    # The drain's dead-lettering, up to its letter written (the event still waits):
    original = queue._delete_if_unchanged
    replays = []

    def replay_then_delete(taken):
        replays.append(replay_dead_letters(queue, "Asset", None, LATER))
        return original(taken)

    queue._delete_if_unchanged = replay_then_delete  # type: ignore[method-assign]
    settled = queue.settle([ref], [FAILED], 1, 1.0, NOW)

    assert replays[0].replayed == 1
    assert settled.superseded == 1 and list_dead_letters(queue, "Asset") == ([], True)
    [waiting] = queue.take_batch(10, None, LATER).events
    assert (waiting.id, waiting.operation, waiting.attempts) == ("4", Operation.DELETE, 0)


def test_a_versioned_letter_never_replaces_an_unversioned_event_posted_after_it(
        queue: EventQueue):
    """Without a version on both sides arrival decides: the delete posted after the upsert
    failed is the newer event, and replaying the upsert must not undo it."""
    dead_letter(queue, Event("Asset", "5", Operation.UPSERT, None, 4))
    queue.store([Event("Asset", "5", Operation.DELETE)], LATER)

    replayed = replay_dead_letters(queue, "Asset", None, LATER)

    assert (replayed.replayed, replayed.superseded, replayed.letters) == (0, 1, 1)
    [waiting] = queue.take_batch(10, None, LATER).events
    assert (waiting.id, waiting.operation, waiting.version) == ("5", Operation.DELETE, None)


def test_a_record_whose_letters_cross_the_replay_limit_gets_its_newest_event(
        queue: EventQueue):
    """One request replays MAX_LETTERS letters; a record whose letters lie on both sides of
    that limit is replayed from all of its letters, not from the older ones it reached (the
    newer letter, replayed next, then met the older event waiting and was dropped)."""
    filler = [_letter_row("1000", f"filler-{number}", NOW) for number in range(MAX_LETTERS - 1)]
    for start in range(0, len(filler), 100):
        queue.dead_letters.submit_transaction(
            [("create", row) for row in filler[start:start + 100]])
    # Record 5000's older letter (an upsert) sorts before its newer one (a delete), so the
    # limit falls between them.
    older = min((_letter_row("5000", f"older-{n}", NOW, Operation.UPSERT) for n in range(8)),
                key=lambda row: row["RowKey"])
    newer = next(row for row in (_letter_row("5000", f"newer-{n}", LATER, Operation.DELETE)
                                 for n in range(8)) if row["RowKey"] > older["RowKey"])
    queue.dead_letters.submit_transaction([("create", older), ("create", newer)])

    while not replay_dead_letters(queue, "Asset", None, LATER).complete:
        pass

    waiting = {ref.id: ref.operation for ref in queue.take_batch(10, None, LATER).events}
    assert waiting == {"1000": Operation.UPSERT, "5000": Operation.DELETE}
    assert list_dead_letters(queue, "Asset") == ([], True)


def _letter_row(record_id: str, etag: str, failed_at: datetime,
                operation: Operation = Operation.UPSERT) -> dict[str, object]:
    return {"PartitionKey": "Asset", "RowKey": dead_letter_key(record_id, etag),
            "Object": "Asset", "RecordId": record_id, "Operation": operation.value,
            "Attempts": 1, "ErrorCode": FAILED.code, "Error": FAILED.message,
            "FailedAt": failed_at, "EnqueuedAt": NOW}


def test_a_replay_that_meets_the_drain_removing_its_own_event_queues_it(
        queue: EventQueue, monkeypatch: pytest.MonkeyPatch):
    """The drain wrote the letter, then removes the event just as a replay found it waiting:
    the event is queued again, not taken for a newer one and its letter dropped."""
    queue.store([Event("Asset", "6", Operation.DELETE)], NOW)
    [ref] = queue.take_batch(10, None, NOW).events
    letter = _letter_row("6", ref.etag, NOW, Operation.DELETE)
    queue.dead_letters.create_entity(letter)  # the drain's letter; the event still waits
    removed = []
    real_read = queue_module.read_entity

    def drain_removes_then_read(*args):
        if not removed:
            removed.append(queue._delete_if_unchanged(ref))
        return real_read(*args)

    monkeypatch.setattr(queue_module, "read_entity", drain_removes_then_read)
    replayed = replay_dead_letters(queue, "Asset", None, LATER)

    assert removed == [Settled.REMOVED]
    assert (replayed.replayed, replayed.superseded, replayed.letters) == (1, 0, 1)
    [waiting] = queue.take_batch(10, None, LATER).events
    assert (waiting.id, waiting.operation, waiting.attempts) == ("6", Operation.DELETE, 0)
