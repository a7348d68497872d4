"""The general shape of a bulk load: up to ten levels of any objects.

    {"levels": [{"name", "object", "operation", "externalIdField", "parent",
                 "parentReferenceField", "records"}]}

A record of a level may nest the records of a child level under that level's name; a
level's own `records` name their parent with `parentExternalId`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.bulkload.request import (
    API_NAME_PATTERN,
    LEVEL_NAME_PATTERN,
    MAX_LEVELS,
    OPERATIONS,
    PARENT_EXTERNAL_ID_KEY,
    LoadLevel,
    LoadRecord,
    LoadRequest,
    RecordProblem,
    escape_pointer,
    json_type,
    text_id,
    value_problem,
)


def general_shape(
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
                f"{pointer}/{escape_pointer(key)}", "UNKNOWN_FIELD",
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
        external_id = text_id(record.get(level.external_id_field))
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
                if text_id(value) != nested_parent:
                    problems.append(RecordProblem(
                        f"{pointer}/{key}", "PARENT_MISMATCH",
                        f"a record nested under {nested_parent!r} names parent {value!r}",
                        level.name, external_id,
                    ))
            else:
                parent_external_id = text_id(value)
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
                f"{pointer}/{escape_pointer(key)}", "UNKNOWN_FIELD",
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
                f"{key} must be a string, number, boolean or null, got {json_type(value)}",
                level.name, external_id,
            ))
            continue
        refused = value_problem(value)
        if refused is not None:
            problems.append(RecordProblem(f"{pointer}/{key}", *refused, level.name,
                                          external_id))
            continue
        fields[key] = value
    if level.parent is not None and parent_external_id is None:
        problems.append(RecordProblem(
            pointer, "MISSING_PARENT",
            f"a {level.name} record needs {PARENT_EXTERNAL_ID_KEY} or to be nested under "
            f"its parent", level.name, external_id,
        ))
    request.records[level_index].append(LoadRecord(fields, external_id, parent_external_id,
                                                   pointer))
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
