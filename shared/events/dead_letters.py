"""Dead letters: the events that failed on every attempt, listed and replayed.

    list_dead_letters    the letters in key order (object, id), at most `top`, with the
                         error code and message of the last attempt
    replay_dead_letters  the chosen records' letters back into the queue: per record the
                         newest letter's event is stored again with fresh attempts (unless
                         a newer event waits), then the letters read are removed

A replay stores before it removes, so a crash in between leaves the letter beside the
queued event, and replaying it again changes nothing twice (the event collapses with
itself). An unversioned letter is older by arrival than any event waiting for its record,
so it never replaces one; a versioned letter replaces only a versioned event no newer than
itself (an unversioned one waiting is newer by arrival), and one older than the version
last processed for its record is dropped at its take, as any late event.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.events.queue import EventQueue
from shared.events.validation import Event, EventError, Operation, parse_event
from shared.storage.tables import safe_key

MAX_LETTERS = 1000  # letters listed or replayed by one request


@dataclass(frozen=True)
class DeadLetter:
    object: str
    id: str
    operation: Operation
    version: int | None
    payload: str | None
    attempts: int
    error_code: str
    error: str
    failed_at: datetime | None
    enqueued_at: datetime | None
    row_key: str
    etag: str

    def to_answer(self) -> dict[str, Any]:
        """The letter as GET /api/events/dead-letters shows it (the payload as posted)."""
        return {"object": self.object, "id": self.id, "operation": self.operation.value,
                "version": self.version, "attempts": self.attempts,
                "errorCode": self.error_code, "error": self.error,
                "failedAt": self.failed_at, "enqueuedAt": self.enqueued_at,
                "payload": None if self.payload is None else json.loads(self.payload)}

    @property
    def event(self) -> Event:
        return Event(self.object, self.id, self.operation, self.payload, self.version)


@dataclass(frozen=True)
class Replayed:
    replayed: int  # records whose event went back into the queue
    superseded: int  # records where a newer event waits: their letters are only removed
    letters: int  # letters removed
    complete: bool  # False: more letters matched than one request replays


@dataclass(frozen=True)
class LetterSelection:
    """The letters a request names: of one object, of some of its ids or all."""

    object: str
    ids: list[str] | None = None


def parse_selection(document: Any) -> LetterSelection | EventError:
    """`{"object": "Asset", "ids": [17, ...]}` (ids optional, at most MAX_LETTERS) checked
    as a post checks an event's object and id."""
    if not isinstance(document, dict):
        return EventError(None, None, "INVALID_BODY",
                          'send {"object": "Asset"} or {"object": "Asset", "ids": [...]}')
    extra = sorted(set(document) - {"object", "ids"})
    if extra:
        return EventError(None, extra[0], "UNKNOWN_FIELD",
                          f'only "object" and "ids" are allowed, got {extra}')
    ids = document.get("ids")
    if "ids" in document and (not isinstance(ids, list) or not 0 < len(ids) <= MAX_LETTERS):
        return EventError(None, "ids", "INVALID_IDS",
                          f'"ids" must be a list of 1 to {MAX_LETTERS} ids')
    checked: list[str] = []
    for index, value in enumerate(ids or [None]):
        probe = {**{name: document[name] for name in ("object",) if name in document},
                 "id": 1 if value is None else value, "operation": Operation.UPSERT.value}
        parsed = parse_event(probe, None if ids is None else index)
        if isinstance(parsed, list):
            return parsed[0]
        checked.append(parsed.id)
    return LetterSelection(str(document["object"]), None if ids is None else checked)


def list_dead_letters(queue: EventQueue, object_name: str | None = None,
                      ids: list[str] | None = None, top: int = MAX_LETTERS,
                      ) -> tuple[list[DeadLetter], bool]:
    """The letters of `object_name` (of `ids` only, when given), at most `top`; and
    whether that was all of them."""
    if ids is not None and object_name is not None:
        letters = [letter for record_id in dict.fromkeys(ids)
                   for letter in _letters_of(queue, object_name, record_id)]
        return letters[:top], len(letters) <= top
    rows = (queue.dead_letters.query_entities("PartitionKey eq @p",
                                              parameters={"p": safe_key(object_name)})
            if object_name is not None else queue.dead_letters.list_entities())
    found = [_letter(row) for row in islice(rows, top + 1)]
    return found[:top], len(found) <= top


def replay_dead_letters(queue: EventQueue, object_name: str, ids: list[str] | None,
                        now: datetime) -> Replayed:
    letters, complete = list_dead_letters(queue, object_name, ids)
    by_record: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        by_record.setdefault(letter.id, []).append(letter)
    if not complete and letters:
        # The limit may fall among the last record's letters: replayed from some of them,
        # its newest letter, replayed next, would meet the older event waiting and be lost.
        by_record[letters[-1].id] = _letters_of(queue, object_name, letters[-1].id)
    replayed = removed = 0
    for record_letters in by_record.values():
        newest = _newest(record_letters)
        if queue.requeue(newest.event, now, newest.row_key):
            replayed += 1
        removed += sum(_remove(queue, letter) for letter in record_letters)
    return Replayed(replayed, len(by_record) - replayed, removed, complete)


def _letters_of(queue: EventQueue, object_name: str, record_id: str) -> list[DeadLetter]:
    # A record's letters are `<id>.<hash>`: the RowKeys from `<id>.` up to `<id>/`.
    key = safe_key(record_id)
    rows = queue.dead_letters.query_entities(
        "PartitionKey eq @p and RowKey gt @lo and RowKey lt @hi",
        parameters={"p": safe_key(object_name), "lo": f"{key}.", "hi": f"{key}/"})
    return [_letter(row) for row in rows]


def _newest(letters: list[DeadLetter]) -> DeadLetter:
    """By version when every letter has one, else the last to fail (arrival order)."""
    if all(letter.version is not None for letter in letters):
        return max(letters, key=lambda letter: letter.version or 0)
    return max(letters, key=lambda letter: (letter.failed_at is not None,
                                            letter.failed_at or datetime.min))


def _remove(queue: EventQueue, letter: DeadLetter) -> bool:
    with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
        queue.dead_letters.delete_entity(
            safe_key(letter.object), letter.row_key, etag=letter.etag,
            match_condition=MatchConditions.IfNotModified)
        return True
    return False


def _letter(row: Any) -> DeadLetter:
    version = row.get("Version")
    return DeadLetter(
        object=row["Object"], id=row["RecordId"], operation=Operation(row["Operation"]),
        version=None if version in (None, "") else int(version), payload=row.get("Payload"),
        attempts=int(row.get("Attempts") or 0), error_code=row.get("ErrorCode") or "",
        error=row.get("Error") or "", failed_at=row.get("FailedAt"),
        enqueued_at=row.get("EnqueuedAt"), row_key=row["RowKey"], etag=row.metadata["etag"])
