"""The body of `POST /api/bulk-loads`, validated whole before anything is started.

Two shapes are accepted and both become a `LoadRequest` (levels + their records):

- the seed's shape: `{"accounts": [{"name", "industry", "billingCity", "sourceId",
  "contacts": [{"firstName", "lastName", "email"}]}]}` -> Account upserted by
  `External_Id__c` (= sourceId), then Contact inserted with `AccountId`;
- the general shape: `{"levels": [{"name", "object", "operation", "externalIdField",
  "parent", "parentReferenceField", "records"}]}` where a record of a level may nest the
  records of a child level under that level's name, and a level's own `records` name
  their parent with `parentExternalId`.

This module holds what a validated request is made of; `validation.validate_load_request`
reads a body into it (seed_shape.py and general_shape.py read the two shapes) and returns
every problem at once (one per bad record or setting, with a JSON pointer), so a client
fixes its payload in one round trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from shared.messages import Message
from shared.salesforce.bulk_csv import NULL_MARKER

LOAD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
RESERVED_LOAD_ID_PREFIX = "sync-"
LEVEL_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# Salesforce API names: a letter, then letters, digits and single underscores (`__c` etc.).
API_NAME_PATTERN = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_)|__(?=[a-z]+$))*(?:__[a-z]+)?")
OPERATIONS = ("insert", "upsert")
MAX_LEVELS = 10
PARENT_EXTERNAL_ID_KEY = "parentExternalId"


@dataclass(frozen=True)
class LoadLevel(Message):
    """One level of the hierarchy: which object, how it is written, how it finds its parent.

    `parent` is the index of an earlier level (None for the top level); the parent's
    Salesforce id is written into `parent_reference_field` of each record.
    """

    name: str
    object: str
    operation: str
    external_id_field: str | None
    parent: int | None = None
    parent_reference_field: str | None = None


class LoadRecord(NamedTuple):
    """A record's own fields, its external id, and its parent's external id (child levels);
    where it was in the body, and the body's name of a field where it is not the API name.
    A named tuple, not a frozen dataclass: a body holds as many as it has records, and a
    tuple is made several times faster."""

    fields: dict[str, Any]
    external_id: str | None
    parent_external_id: str | None
    pointer: str = ""
    aliases: Mapping[str, str] = MappingProxyType({})  # never changed: shared


@dataclass
class LoadRequest:
    load_id: str | None
    levels: list[LoadLevel]
    records: list[list[LoadRecord]] = field(default_factory=list)
    seed_shape: bool = False  # posted as {"accounts": [...]}


@dataclass(frozen=True)
class RecordProblem:
    """What is wrong with one record or one part of the request, and where (JSON pointer)."""

    pointer: str
    code: str
    detail: str
    level: str | None = None
    external_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"pointer": self.pointer, "code": self.code,
                                "detail": self.detail}
        if self.level is not None:
            body["level"] = self.level
        if self.external_id is not None:
            body["externalId"] = self.external_id
        return body


class LoadRequestInvalid(ValueError):
    def __init__(self, problems: list[RecordProblem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the bulk load request")


def value_problem(value: Any) -> tuple[str, str] | None:
    """(code, detail) when a field value cannot be sent as given, else None."""
    if isinstance(value, str) and value == NULL_MARKER:
        # Bulk API 2.0 reads the text #N/A as null, and has no way to escape it.
        return ("NULL_MARKER_TEXT",
                f"the text {NULL_MARKER} would clear the field (Bulk API 2.0 reads it as "
                "null): send null to clear a field; the text itself cannot be loaded")
    return None


def invalid_text_pointers(body: Any) -> list[str]:
    """JSON pointers of every key or string that is not valid Unicode text (a lone
    surrogate such as "\\ud800", which JSON allows and UTF-8 cannot encode)."""
    if _all_encodable(body):
        return []
    found = []
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:
        pointer, value = pending.pop()
        if isinstance(value, str):
            if not _encodable(value):
                found.append(pointer)
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    readable = key.encode("utf-8", "replace").decode()
                    found.append(f"{pointer}/{escape_pointer(readable)}")
                    continue
                pending.append((f"{pointer}/{escape_pointer(key)}", item))
        elif isinstance(value, list):
            pending.extend((f"{pointer}/{index}", item) for index, item in enumerate(value))
    return sorted(found)


def _all_encodable(body: Any) -> bool:
    """True when every key and string of a parsed JSON body encodes as UTF-8: one pass of
    the C encoder over the whole body, so that only a body that has a lone surrogate pays
    for the walk that names where."""
    try:
        json.dumps(body, ensure_ascii=False, check_circular=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def escape_pointer(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
