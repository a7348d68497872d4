"""Cursor positions as text, the one encoding used by Table Storage, messages and status,
and their order.

A position `(cursor, key)` and a run's upper bound are stored and sent as text: a
timestamp as ISO 8601, a rowversion as `0x...` hex, a version or xid as its digits, the
key as a JSON list. `CursorCodec(kind)` converts both ways; nothing else encodes cursors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.messages import Message
from shared.sql.keyset import Position, UpperBound, as_datetime


@dataclass(frozen=True)
class StoredPosition(Message):
    """A position as text: `cursor` None before the first row, `key` "" for no key."""

    cursor: str | None
    key: str = ""


@dataclass(frozen=True)
class StoredBound(Message):
    """A run's upper bound as text (`value` None: the source had no rows)."""

    value: str | None
    inclusive: bool


@dataclass(frozen=True)
class CursorCodec:
    """Text <-> values for one cursor kind (timestamp, rowversion, xid, version)."""

    kind: str

    def cursor_text(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.kind == "timestamp":
            return as_datetime(value).isoformat()
        if self.kind == "rowversion":
            return "0x" + bytes(value).hex()
        return str(int(value))

    def cursor(self, text: str | None) -> Any:
        if text is None:
            return None
        if self.kind == "timestamp":
            return datetime.fromisoformat(text)
        if self.kind == "rowversion":
            return bytes.fromhex(text.removeprefix("0x"))
        return int(text)

    def stored_position(self, position: Position) -> StoredPosition:
        key = "" if position.key is None else json.dumps(list(position.key))
        return StoredPosition(self.cursor_text(position.cursor), key)

    def position(self, stored: StoredPosition) -> Position:
        key = tuple(json.loads(stored.key)) if stored.key else None
        return Position(self.cursor(stored.cursor), key)

    def stored_bound(self, bound: UpperBound) -> StoredBound:
        return StoredBound(self.cursor_text(bound.value), bound.inclusive)

    def bound(self, stored: StoredBound) -> UpperBound:
        return UpperBound(self.cursor(stored.value), stored.inclusive)


def is_after(candidate: Position, current: Position) -> bool:
    """True when `candidate` lies strictly after `current` in (cursor, key) order.

    Cursor values (timestamps, integers, rowversion bytes) and numeric keys order the same
    in Python as in the database. Text keys do not: the database orders them by its
    collation (case-insensitive on SQL Server by default, ICU or libc rules on PostgreSQL),
    which Python cannot reproduce, so at the first differing text key value any other key
    counts as after: the page came back in the database's order, past `current`.
    """
    if candidate.cursor != current.cursor:
        cursor_after: bool = candidate.cursor > current.cursor
        return cursor_after
    if current.key is None:
        return candidate.key is not None
    if candidate.key is None:
        return False
    for new, old in zip(candidate.key, current.key, strict=True):
        if new == old:
            continue
        if _is_number(new) and _is_number(old):
            key_after: bool = new > old
            return key_after
        return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
