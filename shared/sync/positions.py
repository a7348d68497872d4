"""Cursor positions as text for Table Storage and orchestration input, and their order."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.sql.keyset import Position, UpperBound, as_datetime


def encode_cursor(kind: str, value: Any) -> str | None:
    if value is None:
        return None
    if kind == "timestamp":
        return as_datetime(value).isoformat()
    if kind == "rowversion":
        return "0x" + bytes(value).hex()
    return str(int(value))


def decode_cursor(kind: str, text: str | None) -> Any:
    if text is None:
        return None
    if kind == "timestamp":
        return datetime.fromisoformat(text)
    if kind == "rowversion":
        return bytes.fromhex(text.removeprefix("0x"))
    return int(text)


def encode_key(key: tuple[Any, ...] | None) -> str:
    return "" if key is None else json.dumps(list(key))


def decode_key(text: str | None) -> tuple[Any, ...] | None:
    return tuple(json.loads(text)) if text else None


def encode_position(kind: str, position: Position) -> dict[str, Any]:
    return {"cursor": encode_cursor(kind, position.cursor), "key": encode_key(position.key)}


def decode_position(kind: str, data: dict[str, Any]) -> Position:
    return Position(decode_cursor(kind, data["cursor"]), decode_key(data.get("key")))


def encode_bound(kind: str, bound: UpperBound) -> dict[str, Any]:
    return {"value": encode_cursor(kind, bound.value), "inclusive": bound.inclusive}


def decode_bound(kind: str, data: dict[str, Any]) -> UpperBound:
    return UpperBound(decode_cursor(kind, data["value"]), bool(data["inclusive"]))


def is_after(candidate: Position, current: Position) -> bool:
    """True when `candidate` lies strictly after `current` in (cursor, key) order.

    Cursor values (timestamps, integers, rowversion bytes) and numeric keys order the same
    in Python as in the database. Text keys do not: the database orders them by its
    collation (case-insensitive on SQL Server by default, ICU or libc rules on PostgreSQL),
    which Python cannot reproduce, so at the first differing text key value any other key
    counts as after: the page came back in the database's order, past `current`.
    """
    if candidate.cursor != current.cursor:
        return candidate.cursor > current.cursor
    if current.key is None:
        return candidate.key is not None
    if candidate.key is None:
        return False
    for new, old in zip(candidate.key, current.key, strict=True):
        if new == old:
            continue
        if _is_number(new) and _is_number(old):
            return new > old
        return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
