"""Messages between orchestrators and activities: frozen dataclasses, plain JSON on the wire.

Every request and result that crosses the orchestrator/activity boundary (or starts an
orchestration) is a `@dataclass(frozen=True)` subclass of `Message`. The orchestrator passes
`request.to_json()` to `call_activity` and reads the answer with `Result.from_json(...)`; the
activity does the reverse. The wire form is the field names as they are (snake_case, one key
style everywhere), datetimes as ISO 8601 text, enums by value, nested messages as objects.
It is what durable history stores, so keep messages small: references, counts, cursors.

    @dataclass(frozen=True)
    class PagesRequest(Message):
        job: str
        run_id: str

    yield context.call_activity(SYNC_PAGES, PagesRequest(job, run_id).to_json())
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar, get_args, get_origin, get_type_hints

M = TypeVar("M", bound="Message")

# A message's wire form: what call_activity carries and an activity receives and returns.
MessageJson = dict[str, Any]


class MessageError(ValueError):
    """A payload does not have the shape of the message it should be."""


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of every orchestrator/activity message; subclasses are frozen dataclasses."""

    def to_json(self) -> MessageJson:
        return {field.name: _to_wire(getattr(self, field.name))
                for field in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, payload: Any) -> Self:
        """The message from its wire form (or from JSON text of it: the durable client
        encodes orchestration inputs a second time); MessageError names what is wrong."""
        return typing.cast(Self, _from_wire(cls, payload, cls.__name__))

    def to_text(self) -> str:
        return json.dumps(self.to_json())


def _to_wire(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_to_wire(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_wire(item) for key, item in value.items()}
    return value


def _from_wire(kind: Any, value: Any, where: str) -> Any:
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _from_wire(option, value, where)
            except MessageError as error:
                errors.append(str(error))
        raise MessageError("; ".join(errors))
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise MessageError(f"{where}: expected a list, got {type(value).__name__}")
        args = get_args(kind)
        item_kind = args[0] if args else Any
        items = [_from_wire(item_kind, item, f"{where}[{index}]")
                 for index, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise MessageError(f"{where}: expected an object, got {type(value).__name__}")
        _, value_kind = get_args(kind) or (str, Any)
        return {key: _from_wire(value_kind, item, f"{where}.{key}")
                for key, item in value.items()}
    if isinstance(kind, type) and issubclass(kind, Message):
        return _message_from_wire(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise MessageError(f"{where}: {value!r} is not a {kind.__name__}") from None
    if kind is datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise MessageError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if kind is timedelta:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise MessageError(f"{where}: {value!r} is not a number of seconds")
        return timedelta(seconds=value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(kind, type) and kind is not bool and kind is not int and isinstance(value, kind):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is type(None) and value is None:
        return None
    raise MessageError(f"{where}: expected {getattr(kind, '__name__', kind)}, "
                       f"got {type(value).__name__}")


@functools.cache
def _field_hints(kind: type) -> dict[str, Any]:
    # Resolving the string annotations is most of a message's parsing cost, and an
    # orchestrator parses every answer again on each replay: once per class is enough.
    return get_type_hints(kind)


def _message_from_wire(kind: type[M], value: Any, where: str) -> M:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise MessageError(f"{where}: not JSON: {value[:200]!r}") from None
    if isinstance(value, kind):
        return value
    if not isinstance(value, dict):
        raise MessageError(f"{where}: expected an object, got {type(value).__name__}")
    # mypy matches a class object against Hashable by its instances' __hash__(self).
    hints = _field_hints(kind)  # type: ignore[arg-type]
    values = {}
    for field in dataclasses.fields(kind):
        if field.name in value:
            values[field.name] = _from_wire(hints[field.name], value[field.name],
                                            f"{where}.{field.name}")
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            raise MessageError(f"{where}: {field.name!r} is missing")
    return kind(**values)
