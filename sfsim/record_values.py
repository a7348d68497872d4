"""What a record's incoming values become before they are stored: field names checked,
relationship references resolved by external id, lookups checked, types converted; and
`RecordError`, with the code Salesforce uses, when a value is refused."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sfsim.schema import FieldDef, ObjectDef, looks_like_id, to_18

if TYPE_CHECKING:
    from sfsim.org import Org

NULL_MARKER = "#N/A"
_SCALARS = frozenset((str, int, float, bool, type(None)))  # never a relationship reference
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RecordError(Exception):
    """One record was refused; `code` is Salesforce's statusCode."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{code}:{message}")
        self.code = code
        self.message = message
        self.fields = fields or []

    def to_json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def resolve_values(
    org: Org, obj: ObjectDef, values: Mapping[str, Any], from_csv: bool
) -> tuple[dict[str, Any], str | None]:
    """The values of one record as stored (by field name) and the record's `Id` if given.

    From CSV an empty value is left out and `#N/A` clears the field.
    """
    changes: dict[str, Any] = {}
    record_id: str | None = None
    exact = obj.fields.get
    settable = obj.settable.get
    text_length = obj.text_lengths.get
    float_names = obj.float_names
    for key, raw in values.items():
        if key == "attributes":
            continue
        if from_csv:
            if raw == "":
                continue
            if raw == NULL_MARKER:
                raw = None
        # Most values: text for a text field within its length, a float for a number
        # field, named as the field is defined; stored as they came (what `_convert`
        # would return, without its calls).
        kind = raw.__class__
        if kind is str:
            length = text_length(key)
            if length is not None and len(raw) <= length:
                changes[key] = raw
                continue
        elif kind is float and key in float_names:
            changes[key] = raw
            continue
        # Other scalars for a field named as it is defined: converted.
        field = settable(key)
        if field is not None and kind in _SCALARS:
            if kind is str and field.type == "date":
                try:
                    changes[key] = _iso_date(raw)
                except ValueError:
                    changes[key] = _convert(org, obj, field, raw)  # refused as Salesforce does
                continue
            changes[key] = _convert(org, obj, field, raw)
            continue
        if "." in key or (raw.__class__ not in _SCALARS and isinstance(raw, Mapping)):
            relation, parent_id = _resolve_relationship(org, obj, key, raw)
            changes[relation.name] = parent_id
            continue
        field = exact(key) or obj.field_named(key)
        if field is None:
            raise _no_such_column(key, obj, key)
        if field.name == "Id":
            record_id = None if raw is None else str(raw).strip() or None
            continue
        if not field.createable:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {field.name}. Please check the "
                "security settings of this field and verify that it is read/write for "
                "your profile or permission set.",
                [field.name],
            )
        changes[field.name] = _convert(org, obj, field, raw)
    return changes, record_id


def _resolve_relationship(
    org: Org, obj: ObjectDef, key: str, raw: Any
) -> tuple[FieldDef, str | None]:
    if isinstance(raw, Mapping):
        relationship_name = key
        pairs = [(k, v) for k, v in raw.items() if k != "attributes"]
        if len(pairs) != 1:
            raise RecordError(
                "INVALID_FIELD",
                f"A relationship reference to {key} needs exactly one external id field",
                [key],
            )
        parent_field_name, value = pairs[0]
    else:
        relationship_name, _, parent_field_name = key.partition(".")
        value = raw
    field = obj.relationship(relationship_name)
    if field is None:
        raise _no_such_column(relationship_name, obj, key)
    parent = org.objects[field.reference_to or ""]
    parent_field = parent.field_named(parent_field_name)
    if parent_field is None or not (parent_field.external_id or parent_field.name == "Id"):
        raise RecordError(
            "INVALID_FIELD",
            f"Field {parent_field_name} on {parent.name} is not an external id field",
            [key],
        )
    if value is None or value == "":
        return field, None
    if parent_field.name == "Id":
        return field, _check_reference(org, field, parent, str(value))
    parent_id = org.find_by_unique(parent.name, parent_field.name, value)
    if parent_id is None:
        raise RecordError(
            "INVALID_FIELD",
            f"Foreign key external ID: {value} not found for field {parent_field.name} "
            f"in entity {parent.name}",
            [field.name],
        )
    return field, parent_id


def _check_reference(org: Org, field: FieldDef, parent: ObjectDef, value: str) -> str:
    if not looks_like_id(value):
        raise RecordError(
            "MALFORMED_ID", f"{field.name}: id value of incorrect type: {value}", [field.name]
        )
    full = to_18(value)
    if full[:3] != parent.key_prefix or full not in org.records[parent.name]:
        raise RecordError(
            "INVALID_CROSS_REFERENCE_KEY",
            f"invalid cross reference id: {field.name}",
            [field.name],
        )
    return full


def _convert(org: Org, obj: ObjectDef, field: FieldDef, raw: Any) -> Any:
    if raw is None:
        return None
    convert = _CONVERTERS.get(field.type)
    if convert is None:
        return _checked_text(field, field.type, raw if isinstance(raw, str) else str(raw))
    try:
        return convert(org, field, raw)
    except (ValueError, TypeError, OverflowError):
        raise RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{field.name}: value not of required type: {raw}",
            [field.name],
        ) from None


def _to_reference(org: Org, field: FieldDef, raw: Any) -> str:
    parent = org.objects[field.reference_to or ""]
    return _check_reference(org, field, parent, str(raw).strip())


def _to_boolean(org: Org, field: FieldDef, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(raw)


def _to_int(org: Org, field: FieldDef, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(raw)
    number = float(raw)
    if number != int(number):
        raise ValueError(raw)
    return int(number)


def _to_float(org: Org, field: FieldDef, raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(raw)
    return float(raw)


def _to_date(org: Org, field: FieldDef, raw: Any) -> str:
    return _iso_date(str(raw))


@functools.lru_cache(maxsize=4096)
def _iso_date(text: str) -> str:
    # Records written together mostly share few dates: each is parsed once.
    return dt.date.fromisoformat(text.strip()[:10]).isoformat()


def _to_datetime(org: Org, field: FieldDef, raw: Any) -> str:
    parsed = dt.datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


# Field types whose values are converted or checked beyond text, and how (ValueError,
# TypeError or OverflowError: not a value of the type).
_CONVERTERS: dict[str, Callable[[Org, FieldDef, Any], Any]] = {
    "reference": _to_reference, "boolean": _to_boolean, "int": _to_int,
    "double": _to_float, "currency": _to_float, "percent": _to_float,
    "date": _to_date, "datetime": _to_datetime,
}


def _checked_text(field: FieldDef, kind: str, value: str) -> str:
    if kind == "email" and value and not EMAIL.match(value):
        raise RecordError(
            "INVALID_EMAIL_ADDRESS", f"{field.name}: invalid email address: {value}",
            [field.name],
        )
    if len(value) > field.length:
        raise RecordError(
            "STRING_TOO_LONG",
            f"{field.name}: data value too large: {value[:40]} (max length={field.length})",
            [field.name],
        )
    return value


def _no_such_column(column: str, obj: ObjectDef, key: str) -> RecordError:
    return RecordError("INVALID_FIELD", f"No such column '{column}' on sobject of type {obj.name}",
                       [key])
