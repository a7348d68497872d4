"""POST /api/events bodies -> events, or every problem with each bad event named.

A body is one event or `{"events": [...]}` (1 to 10,000). An event:

    {"object": "Asset", "id": 42, "operation": "upsert" | "delete",
     "payload": {...} (optional JSON object), "version": 17 (optional, 0 to 2^63-1)}

Nothing is stored unless every event is valid. Text must be valid Unicode (no lone
surrogates; `object` and `id` printable); JSON must be strict (no NaN, no
duplicate keys).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from shared.events.objects import EVENT_OBJECTS, EventObject

MAX_EVENTS = 10_000
MAX_ID_LENGTH = 255
MAX_PAYLOAD_CHARS = 30_000  # a Table Storage string property holds at most 32 K UTF-16 units
MAX_VERSION = 2**63 - 1
FIELDS = frozenset({"object", "id", "operation", "payload", "version"})


class Operation(Enum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """One validated event; `payload` is its JSON text (None when not given)."""

    object: str
    id: str
    operation: Operation
    payload: str | None = None
    version: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.object, self.id)


@dataclass(frozen=True)
class EventError:
    """What is wrong with the event at `index` (None: with the body as a whole)."""

    index: int | None
    field: str | None
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "code": self.code,
                "message": self.message}


class _BadJson(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _BadJson(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON number")


def parse_events(body: bytes) -> list[Event] | list[EventError]:
    """The events of a POST body, in order, or every problem found (never both)."""
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        return [EventError(None, None, "INVALID_TEXT",
                           f"the body is not UTF-8 text (byte {error.start})")]
    except RecursionError:
        return [EventError(None, None, "INVALID_JSON", "the body nests JSON too deeply")]
    except ValueError as error:
        return [EventError(None, None, "INVALID_JSON", f"the body is not JSON: {error}")]
    if not isinstance(document, dict):
        return [EventError(None, None, "INVALID_BODY",
                           'send one event object or {"events": [event, ...]}')]
    if "events" not in document:
        items, single = [document], True
    else:
        extra = sorted(set(document) - {"events"})
        if extra:
            return [EventError(None, extra[0], "UNKNOWN_FIELD",
                               f'only "events" is allowed beside the list, got {extra}')]
        items, single = document["events"], False
        if not isinstance(items, list):
            return [EventError(None, "events", "INVALID_BODY", '"events" must be a list')]
        if not items:
            return [EventError(None, "events", "NO_EVENTS", '"events" is empty')]
        if len(items) > MAX_EVENTS:
            return [EventError(None, "events", "TOO_MANY_EVENTS",
                               f"{len(items)} events in one post; at most {MAX_EVENTS}")]
    events: list[Event] = []
    errors: list[EventError] = []
    for index, item in enumerate(items):
        parsed = parse_event(item, None if single else index)
        if isinstance(parsed, Event):
            events.append(parsed)
        else:
            errors.extend(parsed)
    return errors if errors else events


def parse_event(item: Any, index: int | None) -> Event | list[EventError]:
    def error(field: str | None, code: str, message: str) -> EventError:
        return EventError(index, field, code, message)

    if not isinstance(item, dict):
        return [error(None, "INVALID_EVENT", "an event must be a JSON object")]
    errors = [error(name, "UNKNOWN_FIELD", f"unknown field {name!r}; an event has "
                    f"{', '.join(sorted(FIELDS))}")
              for name in sorted(set(item) - FIELDS)]
    errors += [error(name, "MISSING_FIELD", f"{name!r} is required")
               for name in ("object", "id", "operation") if name not in item]
    kind = _event_object(item.get("object"), "object" in item, errors, error)
    record_id = _record_id(item.get("id"), kind, "id" in item, errors, error)
    operation = None
    if "operation" in item:
        try:
            operation = Operation(item["operation"])
        except (ValueError, TypeError):
            errors.append(error("operation", "INVALID_OPERATION",
                                f"operation must be upsert or delete, got {item['operation']!r}"))
    payload = _payload(item.get("payload"), errors, error)
    version = item.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or not 0 <= version <= MAX_VERSION):
        errors.append(error("version", "INVALID_VERSION",
                            f"version must be a whole number from 0 to {MAX_VERSION}, "
                            f"got {version!r}"))
    if errors or kind is None or record_id is None or operation is None:
        return errors
    return Event(kind.name, record_id, operation, payload, version)


def _event_object(value: Any, given: bool, errors: list[EventError],
                  error: Any) -> EventObject | None:
    if not given:
        return None
    if not isinstance(value, str) or not _is_text(value):
        errors.append(error("object", "INVALID_TEXT", "object must be text"))
        return None
    kind = EVENT_OBJECTS.get(value)
    if kind is None:
        errors.append(error("object", "UNKNOWN_OBJECT", f"unknown object {value[:80]!r}; "
                            f"events may name {', '.join(sorted(EVENT_OBJECTS))}"))
    return kind


def _record_id(value: Any, kind: EventObject | None, given: bool,
               errors: list[EventError], error: Any) -> str | None:
    if not given:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors.append(error("id", "INVALID_ID", "id must be text or a whole number"))
        return None
    text = str(value)
    if not _is_text(text) or not text.strip() or len(text) > MAX_ID_LENGTH:
        errors.append(error("id", "INVALID_ID", f"id must be 1 to {MAX_ID_LENGTH} printable "
                            "characters"))
        return None
    if kind is not None and kind.key_kind == "integer":
        if not re.fullmatch(r"[0-9]{1,19}", text) or not 0 < int(text) <= MAX_VERSION:
            errors.append(error("id", "INVALID_ID", f"{kind.name} ids are whole numbers "
                                f"above 0, got {text[:40]!r}"))
            return None
        return str(int(text))
    return text


def _payload(value: Any, errors: list[EventError], error: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(error("payload", "INVALID_PAYLOAD", "payload must be a JSON object"))
        return None
    if not all(_is_unicode(text) for text in _strings(value)):
        errors.append(error("payload", "INVALID_TEXT", "payload holds text that is not "
                            "valid Unicode (a lone surrogate)"))
        return None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = _utf16_units(text)
    if size > MAX_PAYLOAD_CHARS:
        errors.append(error("payload", "PAYLOAD_TOO_LARGE", f"payload is {size} "
                            f"characters as JSON (UTF-16 code units: a character beyond "
                            f"U+FFFF counts twice); at most {MAX_PAYLOAD_CHARS}"))
        return None
    return text


def _utf16_units(text: str) -> int:
    """The length Table Storage measures a string property in (at most 32 K units)."""
    if len(text) * 2 <= MAX_PAYLOAD_CHARS:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_text(text: str) -> bool:
    # Printable only: table keys drop other characters, and two ids must never share a key.
    return _is_unicode(text) and text.isprintable()
