"""The body of `POST /api/bulk-loads`, validated whole before anything is started.

Two shapes are accepted and both become a `LoadRequest` (levels + their records):

- the seed's shape: `{"accounts": [{"name", "industry", "billingCity", "sourceId",
  "contacts": [{"firstName", "lastName", "email"}]}]}` -> Account upserted by
  `External_Id__c` (= sourceId), then Contact inserted with `AccountId`;
- the general shape: `{"levels": [{"name", "object", "operation", "externalIdField",
  "parent", "parentReferenceField", "records"}]}` where a record of a level may nest the
  records of a child level under that level's name, and a level's own `records` name
  their parent with `parentExternalId`.

`validate_load_request` returns every problem at once (one per bad record or setting, with
a JSON pointer), so a client fixes its payload in one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

LOAD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
RESERVED_LOAD_ID_PREFIX = "sync-"
LEVEL_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# Salesforce API names: a letter, then letters, digits and single underscores (`__c` etc.).
API_NAME_PATTERN = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_)|__(?=[a-z]+$))*(?:__[a-z]+)?")
OPERATIONS = ("insert", "upsert")
MAX_LEVELS = 10
PARENT_EXTERNAL_ID_KEY = "parentExternalId"

SEED_ACCOUNT_FIELDS = {
    "name": "Name", "industry": "Industry", "billingCity": "BillingCity",
    "sourceId": "External_Id__c",
}
SEED_CONTACT_FIELDS = {"firstName": "FirstName", "lastName": "LastName", "email": "Email"}


@dataclass(frozen=True)
class LoadLevel:
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "object": self.object, "operation": self.operation,
            "externalIdField": self.external_id_field, "parent": self.parent,
            "parentReferenceField": self.parent_reference_field,
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> LoadLevel:
        return cls(
            name=body["name"], object=body["object"], operation=body["operation"],
            external_id_field=body.get("externalIdField"), parent=body.get("parent"),
            parent_reference_field=body.get("parentReferenceField"),
        )


@dataclass(frozen=True)
class LoadRecord:
    """A record's own fields, its external id, and its parent's external id (child levels)."""

    fields: dict[str, Any]
    external_id: str | None
    parent_external_id: str | None


@dataclass
class LoadRequest:
    load_id: str | None
    levels: list[LoadLevel]
    records: list[list[LoadRecord]] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        return sum(len(records) for records in self.records)


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


def validate_load_request(body: Any) -> LoadRequest:
    """The request as levels and records; raises LoadRequestInvalid listing every problem."""
    problems: list[RecordProblem] = []
    if not isinstance(body, dict):
        raise LoadRequestInvalid([RecordProblem(
            "", "WRONG_TYPE", "the body must be a JSON object with `accounts` or `levels`"
        )])
    load_id = _load_id(body, problems)
    if ("accounts" in body) == ("levels" in body):
        problems.append(RecordProblem(
            "", "SHAPE_UNKNOWN",
            "give either `accounts` (accounts with their contacts) or `levels` "
            "(a hierarchy of objects), not both and not neither",
        ))
        raise LoadRequestInvalid(problems)
    unknown = sorted(set(body) - {"loadId", "accounts", "levels"})
    for key in unknown:
        problems.append(RecordProblem(
            f"/{_escape(key)}", "UNKNOWN_FIELD",
            f"unknown member {key!r}; expected loadId and accounts or levels",
        ))
    if "accounts" in body:
        request = _seed_shape(body["accounts"], load_id, problems)
    else:
        request = _general_shape(body["levels"], load_id, problems)
    if problems:
        raise LoadRequestInvalid(problems)
    return request


def _load_id(body: Mapping[str, Any], problems: list[RecordProblem]) -> str | None:
    load_id = body.get("loadId")
    if load_id is None:
        return None
    if not isinstance(load_id, str) or not LOAD_ID_PATTERN.fullmatch(load_id):
        problems.append(RecordProblem(
            "/loadId", "INVALID_LOAD_ID",
            "loadId must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit",
        ))
        return None
    if load_id.lower().startswith(RESERVED_LOAD_ID_PREFIX):
        # `sync-<job>` is the fixed instance id, and so the lock, of a sync job: a load
        # started under it would be taken for a run, terminated or replaced by a tick.
        problems.append(RecordProblem(
            "/loadId", "INVALID_LOAD_ID",
            f"loadIds starting with {RESERVED_LOAD_ID_PREFIX!r} are reserved for the sync "
            "jobs' runs; choose another loadId",
        ))
        return None
    return load_id


# -- the seed's shape -------------------------------------------------------------------


def _seed_shape(accounts: Any, load_id: str | None, problems: list[RecordProblem]) -> LoadRequest:
    levels = [
        LoadLevel("accounts", "Account", "upsert", "External_Id__c"),
        LoadLevel("contacts", "Contact", "insert", None, 0, "AccountId"),
    ]
    request = LoadRequest(load_id, levels, [[], []])
    if not isinstance(accounts, list) or not accounts:
        problems.append(RecordProblem(
            "/accounts", "WRONG_TYPE", "accounts must be a non-empty list of objects"
        ))
        return request
    seen: dict[str, str] = {}
    for index, account in enumerate(accounts):
        pointer = f"/accounts/{index}"
        if not isinstance(account, dict):
            problems.append(RecordProblem(pointer, "WRONG_TYPE", "an account must be an object",
                                          "accounts"))
            continue
        source_id = _text_id(account.get("sourceId"))
        fields = _seed_fields(account, SEED_ACCOUNT_FIELDS, {"contacts"}, pointer, "accounts",
                              source_id, problems)
        if source_id is None:
            problems.append(RecordProblem(
                pointer + "/sourceId", "MISSING_EXTERNAL_ID",
                "sourceId (the account's external id) is missing or not a string or number",
                "accounts",
            ))
        elif source_id in seen:
            problems.append(RecordProblem(
                pointer + "/sourceId", "DUPLICATE_EXTERNAL_ID",
                f"sourceId {source_id!r} is also used by {seen[source_id]}", "accounts",
                source_id,
            ))
        else:
            seen[source_id] = pointer
        request.records[0].append(LoadRecord(fields, source_id, None))
        contacts = account.get("contacts", [])
        if not isinstance(contacts, list):
            problems.append(RecordProblem(pointer + "/contacts", "WRONG_TYPE",
                                          "contacts must be a list of objects", "accounts",
                                          source_id))
            continue
        for contact_index, contact in enumerate(contacts):
            contact_pointer = f"{pointer}/contacts/{contact_index}"
            if not isinstance(contact, dict):
                problems.append(RecordProblem(contact_pointer, "WRONG_TYPE",
                                              "a contact must be an object", "contacts"))
                continue
            contact_fields = _seed_fields(contact, SEED_CONTACT_FIELDS, set(), contact_pointer,
                                          "contacts", None, problems)
            request.records[1].append(LoadRecord(contact_fields, None, source_id))
    return request


def _seed_fields(
    record: Mapping[str, Any], names: Mapping[str, str], nested: set[str], pointer: str,
    level: str, external_id: str | None, problems: list[RecordProblem],
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in record.items():
        if key in nested:
            continue
        if key not in names:
            problems.append(RecordProblem(
                f"{pointer}/{_escape(key)}", "UNKNOWN_FIELD",
                f"unknown member {key!r}; expected {', '.join([*names, *sorted(nested)])}",
                level, external_id,
            ))
            continue
        if key == "sourceId":
            # Checked as the external id (a string or a whole number) by the caller.
            fields[names[key]] = value
            continue
        if value is not None and not isinstance(value, str):
            problems.append(RecordProblem(
                f"{pointer}/{key}", "WRONG_TYPE",
                f"{key} must be a string or null, got {_json_type(value)}", level, external_id,
            ))
            continue
        fields[names[key]] = value
    return fields


# -- the general shape ------------------------------------------------------------------


def _general_shape(
    levels_body: Any, load_id: str | None, problems: list[RecordProblem]
) -> LoadRequest:
    request = LoadRequest(load_id, [], [])
    if not isinstance(levels_body, list) or not levels_body:
        problems.append(RecordProblem("/levels", "WRONG_TYPE",
                                      "levels must be a non-empty list of objects"))
        return request
    if len(levels_body) > MAX_LEVELS:
        problems.append(RecordProblem("/levels", "TOO_MANY_LEVELS",
                                      f"at most {MAX_LEVELS} levels are supported"))
        return request
    levels = _levels(levels_body, problems)
    if levels is None:
        return request
    request.levels = levels
    request.records = [[] for _ in levels]
    children = {index: [child for child, level in enumerate(levels) if level.parent == index]
                for index in range(len(levels))}
    seen: list[dict[str, str]] = [{} for _ in levels]
    # Nested records first, from the top level down; then each level's linked records.
    top_records = levels_body[0].get("records")
    if not isinstance(top_records, list) or not top_records:
        problems.append(RecordProblem("/levels/0/records", "WRONG_TYPE",
                                      "the top level needs a non-empty list of records"))
        return request
    for index, record in enumerate(top_records):
        _collect_record(request, children, seen, 0, record, f"/levels/0/records/{index}",
                        None, problems)
    for level_index in range(1, len(levels)):
        linked = levels_body[level_index].get("records", [])
        pointer = f"/levels/{level_index}/records"
        if not isinstance(linked, list):
            problems.append(RecordProblem(pointer, "WRONG_TYPE", "records must be a list",
                                          levels[level_index].name))
            continue
        for index, record in enumerate(linked):
            _collect_record(request, children, seen, level_index, record, f"{pointer}/{index}",
                            None, problems)
    return request


def _levels(levels_body: list[Any], problems: list[RecordProblem]) -> list[LoadLevel] | None:
    levels: list[LoadLevel] = []
    names: dict[str, int] = {}
    count_before = len(problems)
    allowed = {"name", "object", "operation", "externalIdField", "parent",
               "parentReferenceField", "records"}
    for index, body in enumerate(levels_body):
        pointer = f"/levels/{index}"
        if not isinstance(body, dict):
            problems.append(RecordProblem(pointer, "WRONG_TYPE", "a level must be an object"))
            continue
        for key in sorted(set(body) - allowed):
            problems.append(RecordProblem(
                f"{pointer}/{_escape(key)}", "UNKNOWN_FIELD",
                f"unknown member {key!r}; expected {', '.join(sorted(allowed))}",
            ))
        sobject = body.get("object")
        if not isinstance(sobject, str) or not API_NAME_PATTERN.fullmatch(sobject):
            problems.append(RecordProblem(pointer + "/object", "INVALID_LEVEL",
                                          "object must be a Salesforce object API name"))
            sobject = "?"
        name = body.get("name", sobject)
        if not isinstance(name, str) or not LEVEL_NAME_PATTERN.fullmatch(name):
            problems.append(RecordProblem(
                pointer + "/name", "INVALID_LEVEL",
                "name must be 1-40 letters, digits or '_', starting with a letter",
            ))
            name = f"level{index}"
        if name in names:
            problems.append(RecordProblem(pointer + "/name", "INVALID_LEVEL",
                                          f"level name {name!r} is used twice"))
        names.setdefault(name, index)
        operation = body.get("operation", "insert")
        if operation not in OPERATIONS:
            problems.append(RecordProblem(pointer + "/operation", "INVALID_LEVEL",
                                          f"operation must be one of {', '.join(OPERATIONS)}"))
        external_id_field = body.get("externalIdField")
        if external_id_field is not None and (
            not isinstance(external_id_field, str)
            or not API_NAME_PATTERN.fullmatch(external_id_field)
        ):
            problems.append(RecordProblem(pointer + "/externalIdField", "INVALID_LEVEL",
                                          "externalIdField must be a field API name"))
            external_id_field = None
        parent: int | None = None
        reference_field = body.get("parentReferenceField")
        if index > 0:
            parent_name = body.get("parent", levels[-1].name if levels else None)
            if not isinstance(parent_name, str) or parent_name not in names or \
                    names[parent_name] >= index:
                problems.append(RecordProblem(
                    pointer + "/parent", "INVALID_LEVEL",
                    "parent must name an earlier level (default: the level before)",
                ))
            else:
                parent = names[parent_name]
            if not isinstance(reference_field, str) or \
                    not API_NAME_PATTERN.fullmatch(reference_field):
                problems.append(RecordProblem(
                    pointer + "/parentReferenceField", "INVALID_LEVEL",
                    "a child level needs parentReferenceField: the lookup field that gets "
                    "the parent's Salesforce id, e.g. AccountId",
                ))
                reference_field = None
        elif "parent" in body or reference_field is not None:
            problems.append(RecordProblem(pointer, "INVALID_LEVEL",
                                          "the top level has no parent"))
        levels.append(LoadLevel(name, sobject, operation, external_id_field, parent,
                                reference_field))
    for index, level in enumerate(levels):
        pointer = f"/levels/{index}/externalIdField"
        if level.operation == "upsert" and not level.external_id_field:
            problems.append(RecordProblem(pointer, "INVALID_LEVEL",
                                          "an upsert level needs externalIdField"))
        elif not level.external_id_field and any(child.parent == index for child in levels):
            problems.append(RecordProblem(
                pointer, "INVALID_LEVEL",
                "a level with child levels needs externalIdField: children are linked to "
                "their parent through it",
            ))
    return None if len(problems) > count_before else levels


def _collect_record(
    request: LoadRequest, children: Mapping[int, list[int]], seen: list[dict[str, str]],
    level_index: int, record: Any, pointer: str, nested_parent: str | None,
    problems: list[RecordProblem],
) -> None:
    level = request.levels[level_index]
    if not isinstance(record, dict):
        problems.append(RecordProblem(pointer, "WRONG_TYPE", "a record must be an object",
                                      level.name))
        return
    external_id = None
    if level.external_id_field:
        external_id = _text_id(record.get(level.external_id_field))
        if external_id is None:
            problems.append(RecordProblem(
                f"{pointer}/{level.external_id_field}", "MISSING_EXTERNAL_ID",
                f"{level.external_id_field} is missing, empty, or not a string or number",
                level.name,
            ))
        elif external_id in seen[level_index]:
            problems.append(RecordProblem(
                f"{pointer}/{level.external_id_field}", "DUPLICATE_EXTERNAL_ID",
                f"{level.external_id_field} {external_id!r} is also used by "
                f"{seen[level_index][external_id]}", level.name, external_id,
            ))
        else:
            seen[level_index][external_id] = pointer
    child_names = {request.levels[child].name: child for child in children[level_index]}
    fields: dict[str, Any] = {}
    parent_external_id = nested_parent
    for key, value in record.items():
        if key in child_names:
            continue
        if key == PARENT_EXTERNAL_ID_KEY:
            if level.parent is None:
                problems.append(RecordProblem(f"{pointer}/{key}", "UNKNOWN_FIELD",
                                              "a top-level record has no parent", level.name,
                                              external_id))
            elif nested_parent is not None:
                if _text_id(value) != nested_parent:
                    problems.append(RecordProblem(
                        f"{pointer}/{key}", "PARENT_MISMATCH",
                        f"a record nested under {nested_parent!r} names parent {value!r}",
                        level.name, external_id,
                    ))
            else:
                parent_external_id = _text_id(value)
                # Levels are read top-down, so every possible parent is already seen.
                if parent_external_id is not None and \
                        parent_external_id not in seen[level.parent]:
                    problems.append(RecordProblem(
                        f"{pointer}/{key}", "UNKNOWN_PARENT",
                        f"parent {value!r} is not a record of level "
                        f"{request.levels[level.parent].name}", level.name, external_id,
                    ))
            continue
        if not API_NAME_PATTERN.fullmatch(key):
            problems.append(RecordProblem(
                f"{pointer}/{_escape(key)}", "UNKNOWN_FIELD",
                f"{key!r} is neither a field API name nor a child level of {level.name}",
                level.name, external_id,
            ))
            continue
        if level.parent_reference_field and key.lower() == level.parent_reference_field.lower():
            problems.append(RecordProblem(
                f"{pointer}/{key}", "PARENT_REFERENCE_SET",
                f"{key} is filled from the parent's Salesforce id: name the parent with "
                f"{PARENT_EXTERNAL_ID_KEY} or nest the record under it",
                level.name, external_id,
            ))
            continue
        if isinstance(value, dict | list):
            problems.append(RecordProblem(
                f"{pointer}/{key}", "WRONG_TYPE",
                f"{key} must be a string, number, boolean or null, got {_json_type(value)}",
                level.name, external_id,
            ))
            continue
        fields[key] = value
    if level.parent is not None and parent_external_id is None:
        problems.append(RecordProblem(
            pointer, "MISSING_PARENT",
            f"a {level.name} record needs {PARENT_EXTERNAL_ID_KEY} or to be nested under "
            f"its parent", level.name, external_id,
        ))
    request.records[level_index].append(LoadRecord(fields, external_id, parent_external_id))
    for child_name, child_index in child_names.items():
        if child_name not in record:
            continue
        nested = record[child_name]
        child_pointer = f"{pointer}/{child_name}"
        if not isinstance(nested, list):
            problems.append(RecordProblem(child_pointer, "WRONG_TYPE",
                                          f"{child_name} must be a list of records",
                                          level.name, external_id))
            continue
        if external_id is None:
            continue  # already reported: children cannot be linked to this record
        for index, child in enumerate(nested):
            _collect_record(request, children, seen, child_index, child,
                            f"{child_pointer}/{index}", external_id, problems)


def _text_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def iter_level_records(request: LoadRequest, level_index: int) -> Iterator[LoadRecord]:
    yield from request.records[level_index]
