"""SOQL over REST: `query`, `queryAll` and the `nextRecordsUrl` pages after the first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sfsim import soql
from sfsim.api.shapes import error_response, json_response
from sfsim.org import Org
from sfsim.schema import FieldDef, ObjectDef

if TYPE_CHECKING:
    from sfsim.app import Simulator

QUERY_BATCH = 2000


def query(sim: Simulator, request: Request, version: str) -> Response:
    text = request.args.get("q")
    if not text:
        return error_response(400, "MALFORMED_QUERY", "A query string has to be specified")
    if request.args.get("columns", "").lower() == "true":
        return json_response(column_metadata(sim.org, soql.parse_query(text, sim.org)))
    parsed, records = soql.run_query(text, sim.org)
    if parsed.count_only:
        return json_response({"totalSize": len(records), "done": True, "records": []})
    shaped = [soql.shape_record(sim.org, parsed.sobject, r, parsed.fields, version)
              for r in records]
    return query_page(sim, shaped, 0, version)


def query_more(sim: Simulator, request: Request, version: str, locator: str) -> Response:
    cursor_id, _, start = locator.partition("-")
    cursor = sim.query_cursors.get(cursor_id)
    if cursor is None or not start.isdigit():
        return error_response(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return query_page(sim, cursor[0], int(start), version, cursor_id)


def query_page(sim: Simulator, records: list[dict], start: int, version: str,
                cursor_id: str | None = None) -> Response:
    end = start + QUERY_BATCH
    body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records),
                            "records": records[start:end]}
    if end < len(records):
        cursor_id = cursor_id or sim.org.ids.new_id("01g")
        sim.query_cursors[cursor_id] = (records, len(records))
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor_id}-{end}"
    return json_response(body)


APEX_TYPES = {
    "id": "Id", "reference": "Id", "boolean": "Boolean", "int": "Integer", "double": "Double",
    "currency": "Decimal", "percent": "Double", "date": "Date", "datetime": "Datetime",
}
NUMBER_TYPES = ("int", "double", "currency", "percent")


def column_metadata(org: Org, parsed: soql.Query) -> dict[str, Any]:
    """The columns a query returns (`?columns=true`, what the Salesforce CLI asks before
    it prints a table): one per field, a parent's fields joined under its relationship."""
    obj = org.objects[parsed.sobject]
    return {
        "columnMetadata": _columns(org, obj, [name.split(".") for name in parsed.fields]),
        "entityName": obj.name,
        "groupBy": False,
        "idSelected": any(name.lower() == "id" for name in parsed.fields),
        "keyPrefix": obj.key_prefix,
    }


def _columns(org: Org, obj: ObjectDef, paths: list[list[str]]) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = []
    joined: dict[str, dict[str, Any]] = {}
    for path in paths:
        if len(path) == 1:
            field = obj.field_named(path[0])
            assert field is not None
            columns.append(_column(field.name, field, []))
            continue
        reference = obj.relationship(path[0])
        assert reference is not None
        name = reference.relationship_name or path[0]
        if name not in joined:
            joined[name] = _column(name, None, [])
            columns.append(joined[name])
        joined[name]["joinColumns"].append(path[1:])
    for name, column in joined.items():
        reference = obj.relationship(name)
        assert reference is not None
        parent = org.objects[reference.reference_to or ""]
        column["joinColumns"] = _columns(org, parent, column["joinColumns"])
    return columns


def _column(name: str, field: FieldDef | None, joins: list[Any]) -> dict[str, Any]:
    kind = field.type if field else "reference"
    return {
        "aggregate": False, "apexType": APEX_TYPES.get(kind, "String") if field else None,
        "booleanType": kind == "boolean", "columnName": name,
        "custom": name.endswith(("__c", "__r")), "displayName": name, "foreignKeyName": None,
        "insertable": bool(field and field.createable), "joinColumns": joins,
        "numberType": kind in NUMBER_TYPES, "textType": APEX_TYPES.get(kind) is None,
        "updatable": bool(field and field.createable),
    }
