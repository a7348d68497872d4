"""sObject Collections (`/composite/sobjects`): up to 200 records created, updated,
upserted by external id, deleted or retrieved in one call, with `allOrNone`."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sfsim import soql
from sfsim.api.shapes import BadRequest, json_body, json_response, object_or_404
from sfsim.record_values import RecordError
from sfsim.schema import looks_like_id

if TYPE_CHECKING:
    from sfsim.app import Simulator

COLLECTION_LIMIT = 200


def collection(sim: Simulator, request: Request, version: str) -> Response:
    if request.method == "DELETE":
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        all_or_none = request.args.get("allOrNone", "false").lower() == "true"
        items = []
        for record_id in ids:
            obj = sim.org.object_for_id(record_id) if looks_like_id(record_id) else None
            items.append((obj.name if obj else None, {"Id": record_id}))
        return write_collection(sim, items, "delete", None, all_or_none)
    body = json_body(request, dict)
    items = []
    for kind, record in _typed_records(body):
        if kind is None and request.method == "PATCH" and looks_like_id(
                str(record.get("Id", ""))):
            found = sim.org.object_for_id(str(record["Id"]))
            kind = found.name if found else None
        if kind is None:
            raise BadRequest("INVALID_TYPE", "Must send a concrete entity type.")
        items.append((kind, record))
    operation = "insert" if request.method == "POST" else "update"
    return write_collection(sim, items, operation, None, bool(body.get("allOrNone")))


def collection_retrieve(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    """Several records by id (`ids`, `fields` as parameters or a JSON body), in the
    order asked, null where an id matches no record."""
    obj = object_or_404(sim.org, sobject)
    if request.method == "POST":
        body = json_body(request, dict)
        ids, fields = body.get("ids"), body.get("fields")
    else:
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        fields = [f for f in request.args.get("fields", "").split(",") if f]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadRequest("MISSING_ARGUMENT", "ids must name at least one record id")
    if not isinstance(fields, list) or not fields:
        raise BadRequest("MISSING_ARGUMENT", "fields must name at least one field")
    if len(ids) > COLLECTION_LIMIT:
        raise BadRequest("EXCEEDED_ID_LIMIT", f"cannot retrieve more than "
                          f"{COLLECTION_LIMIT} records in one call")
    unknown = [f for f in fields if obj.field_named(str(f).strip()) is None]
    if unknown:
        raise BadRequest("INVALID_FIELD", f"No such column '{unknown[0]}' on entity "
                          f"'{obj.name}'.", [str(unknown[0])])
    names = [str(f).strip() for f in fields]
    records = []
    for record_id in ids:
        record = sim.org.get(obj.name, record_id)
        records.append(None if record is None else
                       soql.shape_record(sim.org, obj.name, record, names, version))
    return json_response(records)


def collection_upsert(sim: Simulator, request: Request, version: str, sobject: str,
                      field: str) -> Response:
    obj = object_or_404(sim.org, sobject)
    target = obj.field_named(field)
    if target is None or not (target.external_id or target.name == "Id"):
        raise BadRequest("INVALID_FIELD", f"Field {field} is not an external id field "
                          f"of {obj.name}", [field])
    body = json_body(request, dict)
    items = []
    for kind, record in _typed_records(body):
        if kind is not None and kind != obj.name:
            raise BadRequest("INVALID_TYPE", f"Record type {kind} does not match the "
                              f"URL's {obj.name}")
        items.append((obj.name, record))
    return write_collection(sim, items, "upsert", target.name, bool(body.get("allOrNone")))


def write_collection(sim: Simulator, items: Sequence[tuple[str | None, dict[str, Any]]],
                     operation: str, external_id_field: str | None, all_or_none: bool) -> Response:
    if len(items) > COLLECTION_LIMIT:
        raise BadRequest(
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
            "into this call",
        )
    duplicates: set[str] = set()
    # Each record's external id as the checks below compare it (text, ignoring case).
    keys = [str(r.get(external_id_field, "")).lower() for _, r in items] \
        if external_id_field else [""] * len(items)
    if external_id_field:
        seen: collections.Counter = collections.Counter(keys)
        duplicates = {k for k, n in seen.items() if n > 1 and k}
    # Which external ids no record had when the call came in: one that a concurrent call
    # created before this one ended makes this one's insert fail (the upsert race).
    absent, generation = _absent_external_ids(sim, items, external_id_field)
    _work_for_a_while(sim)
    undo: list = []
    results: list[dict[str, Any]] = []
    with sim.org.lock:
        # Only a write in between can have created an absent external id.
        if sim.org.generation == generation:
            absent = set()
        for (kind, record), key in zip(items, keys, strict=True):
            try:
                if kind is None or kind not in sim.org.objects:
                    raise RecordError("MALFORMED_ID", "malformed id "
                                      + str(record.get("Id", "")), [])
                if external_id_field and key in duplicates:
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"Duplicate external id specified: {record.get(external_id_field)}",
                        [external_id_field],
                    )
                if external_id_field and key in absent:
                    _refuse_concurrent_insert(sim, kind, external_id_field, record)
                result = sim.org.write(kind, operation, record, external_id_field,
                                        undo=undo)
                entry: dict[str, Any] = {"id": result.id, "success": True, "errors": []}
                if operation == "upsert":
                    entry["created"] = result.created
                results.append(entry)
            except RecordError as error:
                results.append({"success": False, "errors": [error.to_json()]})
        if all_or_none and any(not r["success"] for r in results):
            sim.org.undo(undo)
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                           "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"id": None, "success": False,
                                            "errors": [rolled_back]}
                for r in results
            ]
    for answer in results:
        answer.setdefault("id", None)
    return Response(results_json(results), content_type="application/json;charset=UTF-8")


def results_json(results: list[dict[str, Any]]) -> str:
    """`json.dumps(results)`: a success's few fixed members are written out as they are,
    not through the encoder (its work per record is most of the answer's)."""
    parts = []
    for entry in results:
        record_id = entry["id"]
        created = entry.get("created", _NOT_SET)
        if (entry["success"] is True and not entry["errors"] and record_id.__class__ is str
                and record_id.isalnum() and record_id.isascii() and len(entry) == 3
                + (created is not _NOT_SET) and created in _CREATED_TEXT):
            parts.append(f'{{"id": "{record_id}", "success": true, "errors": []'
                         f'{_CREATED_TEXT[created]}}}')
        else:
            parts.append(json.dumps(entry))
    return "[" + ", ".join(parts) + "]"


_NOT_SET = object()
_CREATED_TEXT: dict[Any, str] = {_NOT_SET: "", True: ', "created": true',
                                 False: ', "created": false'}


def _absent_external_ids(sim: Simulator, items: Sequence[tuple[str | None, dict[str, Any]]],
                         external_id_field: str | None) -> tuple[set[str], int]:
    """The external ids no record had, and the org's generation then."""
    with sim.org.lock:
        if not external_id_field:
            return set(), sim.org.generation
        return {
            str(record[external_id_field]).lower() for kind, record in items
            if kind in sim.org.objects and record.get(external_id_field) not in (None, "")
            and sim.org.find_by_unique(kind, external_id_field,
                                       record[external_id_field]) is None
        }, sim.org.generation


def _work_for_a_while(sim: Simulator) -> None:
    """A random part of `collection_call_seconds` (seeded draws): calls sent together
    end in any order, as Salesforce's do."""
    longest = sim.settings.collection_call_seconds
    if longest > 0:
        with sim.lock:
            seconds = sim.random.uniform(0, longest)
        time.sleep(seconds)


def _refuse_concurrent_insert(sim: Simulator, kind: str, external_id_field: str,
                              record: dict[str, Any]) -> None:
    """The record was new when the call came in and a concurrent call created it since:
    Salesforce's insert of the same external id fails on its unique index."""
    existing = sim.org.find_by_unique(kind, external_id_field, record[external_id_field])
    if existing is not None:
        raise RecordError(
            "DUPLICATE_VALUE",
            f"duplicate value found: {external_id_field} duplicates value on record with "
            f"id: {existing}", [])


def _typed_records(body: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """The body's `records`, one at a time (so errors come in record order), each with
    the type its `attributes` name, or None."""
    records = body.get("records")
    if not isinstance(records, list):
        raise BadRequest("JSON_PARSER_ERROR", "records must be a JSON array")
    for record in records:
        if not isinstance(record, dict):
            raise BadRequest("JSON_PARSER_ERROR", "each record must be a JSON object")
        yield (record.get("attributes") or {}).get("type"), record
