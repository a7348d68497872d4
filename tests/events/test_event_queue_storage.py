"""The queue table on Azurite: collapse under concurrent posters, settling only unchanged
events, dead letters, stale events and the drain's finish protocol."""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.events import settling as settling_module
from shared.events.drain_state import DrainState, DrainStateTable, Totals
from shared.events.finish import finish_if_quiet
from shared.events.messages import EventOutcome, EventRef, FinishReason, SettleBatchResult
from shared.events.queue import EventQueue
from shared.events.settling import EVENTS_SETTLED
from shared.events.validation import Event, Operation, parse_event, parse_events
from shared.storage.tables import table_client

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)
UP = Operation.UPSERT


def test_concurrent_posters_leave_the_newest_version_of_every_record(queue: EventQueue):
    rng = random.Random(7)
    events = [Event("Asset", str(rng.randint(1, 40)), UP, None, rng.randint(0, 10_000))
              for _ in range(600)]
    newest: dict[str, int] = {}
    for event in events:
        newest[event.id] = max(newest.get(event.id, -1), event.version or 0)
    chunks = [events[start:start + 30] for start in range(0, len(events), 30)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda chunk: queue.store(chunk, NOW), chunks))

    batch = queue.take_batch(100, None, NOW)
    assert {ref.id: ref.version for ref in batch.events} == newest
    assert queue.depth() == len(newest)


def test_an_older_version_is_superseded_and_an_unversioned_event_wins_by_arrival(
        queue: EventQueue):
    assert queue.store([Event("Asset", "1", UP, None, 5)], NOW).stored == 1
    assert queue.store([Event("Asset", "1", UP, None, 4)], NOW).superseded == 1
    assert queue.store([Event("Asset", "1", Operation.DELETE)], NOW).stored == 1

    [ref] = queue.take_batch(10, None, NOW).events
    assert (ref.operation, ref.version) == (Operation.DELETE, None)


def test_an_event_replaced_while_processed_stays_for_the_next_batch(queue: EventQueue):
    queue.store([Event("Asset", "1", UP, None, 1), Event("Asset", "2", UP, None, 1)], NOW)
    taken = queue.take_batch(10, None, NOW).events
    queue.store([Event("Asset", "2", UP, None, 2)], NOW)

    settled = queue.settle(taken, [EventOutcome(True), EventOutcome(True)], 3, 1.0, NOW)

    assert (settled.removed, settled.superseded) == (1, 1)
    [left] = queue.take_batch(10, None, NOW).events
    assert (left.id, left.version) == ("2", 2)
    assert queue.state.read_totals().processed == 1


def test_failures_wait_for_their_retry_then_move_to_the_dead_letters_with_the_error(
        queue: EventQueue):
    queue.store([Event("Asset", "9", UP, '{"why": "test"}', 3)], NOW)
    failed = EventOutcome(False, "SOURCE_ROW_MISSING", "no row with Asset_ID 9")

    first = queue.take_batch(10, None, NOW).events
    assert queue.settle(first, [failed], 2, 60.0, NOW).retrying == 1
    assert queue.take_batch(10, None, NOW + timedelta(seconds=59)).events == []
    assert not queue.has_due_events(NOW + timedelta(seconds=59))
    second = queue.take_batch(10, None, NOW + timedelta(seconds=61)).events
    assert second[0].attempts == 1
    settled = queue.settle(second, [failed], 2, 60.0, NOW + timedelta(seconds=61))

    assert settled.dead_lettered == 1 and queue.depth() == 0
    [letter] = queue.dead_letter_rows()
    assert (letter["RecordId"], letter["Version"], letter["Attempts"]) == ("9", "3", 2)
    assert (letter["ErrorCode"], letter["Error"]) == (failed.code, failed.message)
    assert letter["Payload"] == '{"why": "test"}'
    assert queue.state.read_totals().dead_lettered == 1


def test_an_event_older_than_the_version_processed_is_dropped_unprocessed(queue: EventQueue):
    queue.store([Event("Asset", "1", UP, None, 9)], NOW)
    queue.settle(queue.take_batch(10, None, NOW).events, [EventOutcome(True)], 3, 1.0, NOW)
    queue.store([Event("Asset", "1", UP, None, 4), Event("Asset", "2", UP, None, 4)], NOW)

    batch = queue.take_batch(10, None, NOW)

    assert [ref.id for ref in batch.events] == ["2"] and batch.stale == 1
    assert queue.depth() == 1


def test_a_batch_reads_the_processed_versions_of_its_events_in_one_range_query(azurite):
    """The stale check of a batch: one range read of the processed versions per object,
    not a read per event; ids past the basic plane, escaped ids and unversioned events
    keep their verdicts."""
    requests: list[str] = []

    def count(request) -> None:
        requests.append(request.http_request.method)

    suffix = uuid.uuid4().hex[:10]
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    counted = TableServiceClient.from_connection_string(azurite.connection_string,
                                                        raw_request_hook=count)
    queue = EventQueue(table_client(service, f"Q{suffix}"), table_client(service, f"D{suffix}"),
                       DrainStateTable(table_client(counted, f"S{suffix}")))
    ids = [str(n) for n in range(1, 61)] + ["a\U0001f600", "a\ufb01", "x/y", "%count%01"]
    queue.store([Event("Asset", record_id, UP, None, 5) for record_id in ids], NOW)
    queue.settle(queue.take_batch(100, None, NOW).events, [EventOutcome(True)] * len(ids),
                 3, 1.0, NOW)
    # Half come back older than what was processed (stale), half newer; one unversioned.
    queue.store([Event("Asset", record_id, UP, None, 4 if number % 2 else 6)
                 for number, record_id in enumerate(ids)], NOW)
    queue.store([Event("Asset", "61", UP)], NOW)
    requests.clear()

    batch = queue.take_batch(100, None, NOW)

    fresh = sorted([record_id for number, record_id in enumerate(ids) if not number % 2]
                   + ["61"])
    assert sorted(ref.id for ref in batch.events) == fresh
    assert batch.stale == len(ids) // 2 and queue.depth() == len(fresh)
    assert requests == ["GET"], requests  # one query of the state table


def test_batches_go_round_the_queue_from_where_the_last_one_stopped(queue: EventQueue):
    queue.store([Event("Asset", str(n), UP) for n in range(1, 6)], NOW)

    first = queue.take_batch(3, None, NOW)
    second = queue.take_batch(3, first.cursor, NOW)

    assert [ref.id for ref in first.events] == ["1", "2", "3"]
    assert [ref.id for ref in second.events] == ["4", "5", "1"]


def test_the_drain_finishes_only_if_nothing_was_posted_since_its_last_look(queue: EventQueue):
    state = queue.state
    assert state.mark_running(NOW).state is DrainState.IDLE
    queue.store([Event("Asset", "1", UP)], NOW)
    assert finish_if_quiet(queue, state, NOW) is FinishReason.EVENTS_DUE

    queue.settle(queue.take_batch(10, None, NOW).events, [EventOutcome(True)], 3, 1.0, NOW)
    signal = state.read_signal()
    # A poster marks the signal between the drain's read of it and its idle mark.
    assert state.mark_running(NOW).state is DrainState.RUNNING
    assert not state.declare_idle(signal.etag, NOW)
    assert finish_if_quiet(queue, state, NOW) is FinishReason.IDLE
    assert state.read_signal().state is DrainState.IDLE
    assert state.mark_running(NOW).state is DrainState.IDLE


def test_a_status_look_reads_one_page_and_says_when_more_rows_wait(queue: EventQueue):
    queue.store([Event("Asset", str(n), UP, None, None) for n in range(1, 8)], NOW)
    queue.settle(queue.take_batch(2, None, NOW).events,
                 [EventOutcome(False, "X", "failed")] * 2, 5, 60.0, NOW)

    partial = queue.snapshot(NOW, limit=5)
    whole = queue.snapshot(NOW, limit=None)

    assert (partial.depth, partial.complete) == (5, False)
    assert (whole.depth, whole.due, whole.retrying, whole.complete) == (7, 5, 2, True)
    assert queue.snapshot(NOW, limit=8) == whole
    assert (queue.depth_up_to(3).depth, queue.depth_up_to(3).complete) == (3, False)
    assert (queue.depth_up_to(100).depth, queue.depth_up_to(100).complete) == (7, True)


def test_every_payload_a_post_may_carry_is_stored(queue: EventQueue):
    """The largest payloads validation accepts, in one script and in another, fit a row."""
    accepted = []
    for number, text in enumerate(["\U0001F600" * 29_000, "\U0001F600" * 14_990,
                                   "\u00e9" * 29_990, "y" * 29_990], start=1):
        [parsed] = parse_events(json.dumps({"object": "Asset", "id": number,
                                            "operation": "upsert", "payload": {"t": text}},
                                           ensure_ascii=False).encode())
        if isinstance(parsed, Event):
            accepted.append(parsed)
    assert len(accepted) >= 3

    assert queue.store(accepted, NOW).stored == len(accepted)
    assert queue.depth() == len(accepted)


def test_a_nul_character_in_a_payload_is_kept_and_refused_in_an_id(queue: EventQueue):
    """U+0000 in a payload is stored as the payload's JSON text, which escapes it, so the
    row keeps it as posted; an id (a table key, which refuses control characters) must
    be printable."""
    stored = parse_event(json.loads(
        '{"object": "Asset", "id": 9, "operation": "upsert", "payload": {"note": "a\\u0000b"}}'),
        None)
    refused = parse_event({"object": "Asset", "id": "1\x002", "operation": "upsert"}, None)
    assert isinstance(stored, Event) and not isinstance(refused, Event)
    assert [(error.field, error.code) for error in refused] == [("id", "INVALID_ID")]
    assert "printable" in refused[0].message

    queue.store([stored], NOW)
    failed = EventOutcome(False, "SOURCE_ROW_MISSING", "no row with Asset_ID 9")
    queue.settle(queue.take_batch(10, None, NOW).events, [failed], 1, 60.0, NOW)

    [letter] = queue.dead_letter_rows()
    assert json.loads(letter["Payload"]) == {"note": "a\x00b"}


def _mixed_batch(queue: EventQueue) -> list[EventRef]:
    """Three events taken: one to finish, one to fail a first time, one to fail its last."""
    queue.store([Event("Asset", "3", UP, None, 1)], NOW)
    earlier = queue.take_batch(10, None, NOW).events
    queue.settle(earlier, [EventOutcome(False, "SourceError", "down")], 2, 1.0, NOW,
                 batch_id="b0")
    queue.store([Event("Asset", "1", UP, None, 1), Event("Asset", "2", UP, None, 1)], NOW)
    return queue.take_batch(10, None, NOW + timedelta(seconds=5)).events


OUTCOMES = {"1": EventOutcome(True), "2": EventOutcome(False, "SourceError", "down"),
            "3": EventOutcome(False, "SourceError", "down")}
MIXED = SettleBatchResult(removed=1, retrying=1, dead_lettered=1)


def test_a_settle_run_again_after_it_completed_answers_the_same_and_counts_once(
        queue: EventQueue):
    taken = _mixed_batch(queue)
    outcomes = [OUTCOMES[ref.id] for ref in taken]
    later = NOW + timedelta(seconds=6)

    first = queue.settle(taken, outcomes, 2, 1.0, later, batch_id="b1")
    again = queue.settle(taken, outcomes, 2, 1.0, later, batch_id="b1")

    assert first == again == MIXED
    assert queue.state.read_totals() == Totals(processed=1, dead_lettered=1, superseded=0)
    assert len(queue.dead_letter_rows()) == 1 and queue.depth() == 1


def test_a_settle_cut_off_before_its_totals_counts_each_event_as_settled_on_its_retry(
        queue: EventQueue, monkeypatch: pytest.MonkeyPatch):
    taken = _mixed_batch(queue)
    outcomes = [OUTCOMES[ref.id] for ref in taken]
    later = NOW + timedelta(seconds=6)

    def crash(name: str) -> None:
        if name == EVENTS_SETTLED:
            raise SystemExit("crash point")

    with monkeypatch.context() as patch:
        patch.setattr(settling_module, "crash_point", crash)
        with pytest.raises(SystemExit):
            queue.settle(taken, outcomes, 2, 1.0, later, batch_id="b1")
    again = queue.settle(taken, outcomes, 2, 1.0, later, batch_id="b1")

    assert again == MIXED
    assert queue.state.read_totals() == Totals(processed=1, dead_lettered=1, superseded=0)
    assert len(queue.dead_letter_rows()) == 1 and queue.depth() == 1


def test_events_with_large_non_ascii_payloads_are_stored_a_transaction_at_a_time(azurite):
    """A transaction's body carries each payload JSON-escaped (`é` is six bytes): chunks
    fit the 4 MiB a transaction takes, instead of failing and falling back to one write
    and read per event."""
    requests = [0]
    service = TableServiceClient.from_connection_string(
        azurite.connection_string, raw_request_hook=lambda _: requests.__setitem__(
            0, requests[0] + 1))
    suffix = uuid.uuid4().hex[:10]
    queue = EventQueue(table_client(service, f"Q{suffix}"), table_client(service, f"D{suffix}"),
                       DrainStateTable(table_client(service, f"S{suffix}")))
    events = [Event("Asset", str(number), UP, json.dumps({"t": "\u00e9" * 20_000},
                                                          ensure_ascii=False))
              for number in range(1, 100)]
    requests[0] = 0

    assert queue.store(events, NOW).stored == len(events)

    assert queue.depth() == len(events)
    assert requests[0] <= 12, f"{requests[0]} requests to store {len(events)} events"
