"""Single records over REST: create, read, update, delete by id or by external id
(upsert), and the replication calls getUpdated / getDeleted."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from sfsim import soql
from sfsim.api.shapes import BadRequest, error_response, json_body, json_response, object_or_404
from sfsim.record_values import RecordError

if TYPE_CHECKING:
    from sfsim.app import Simulator


def create_record(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    obj = object_or_404(sim.org, sobject)
    body = json_body(request, dict)
    try:
        result = sim.org.write(obj.name, "insert", body)
    except RecordError as error:
        return error_response(400, error.code, error.message, error.fields)
    return json_response({"id": result.id, "success": True, "errors": []}, 201)


def record(sim: Simulator, request: Request, version: str, sobject: str,
           record_id: str) -> Response:
    obj = object_or_404(sim.org, sobject)
    if request.method == "GET":
        record = sim.org.get(obj.name, record_id)
        if record is None:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        fields = request.args.get("fields")
        names = [n.strip() for n in fields.split(",")] if fields else list(record)
        return json_response(soql.shape_record(sim.org, obj.name, record, names, version))
    try:
        if request.method == "DELETE":
            sim.org.write(obj.name, "delete", {"Id": record_id})
        else:
            body = json_body(request, dict)
            sim.org.write(obj.name, "update", {**body, "Id": record_id})
    except RecordError as error:
        status = 404 if error.code in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED",
                                       "MALFORMED_ID") else 400
        if status == 404:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        return error_response(400, error.code, error.message, error.fields)
    return Response(status=204)


def record_by_external_id(sim: Simulator, request: Request, version: str, sobject: str, field: str,
                          value: str) -> Response:
    obj = object_or_404(sim.org, sobject)
    target = obj.field_named(field)
    if target is None or not (target.external_id or target.name == "Id"):
        return error_response(404, "NOT_FOUND", f"Provided external ID field does not "
                              f"exist or is not accessible: {field}")
    existing = sim.org.find_by_unique(obj.name, target.name, value)
    if request.method == "GET":
        record = sim.org.get(obj.name, existing) if existing else None
        if record is None:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(soql.shape_record(sim.org, obj.name, record, list(record),
                                               version))
    if request.method == "DELETE":
        if not existing:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        sim.org.write(obj.name, "delete", {"Id": existing})
        return Response(status=204)
    body = json_body(request, dict)
    if target.name in body and str(body[target.name]) != value:
        return error_response(400, "INVALID_FIELD", f"The external ID field {target.name} "
                              "in the URL and in the body disagree", [target.name])
    try:
        result = sim.org.write(obj.name, "upsert", {**body, target.name: value}, target.name)
    except RecordError as error:
        return error_response(400, error.code, error.message, error.fields)
    if result.created:
        return json_response({"id": result.id, "success": True, "errors": [],
                              "created": True}, 201)
    if float(version) < 46:
        # Before API 46.0 an upsert that updated answered 204 without a body.
        return Response(status=204)
    return json_response({"id": result.id, "success": True, "errors": [], "created": False})


def updated_records(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    """getUpdated: ids of records created or changed between `start` and `end`."""
    obj = object_or_404(sim.org, sobject)
    start, end = _replication_window(request)
    ids = [
        record["Id"] for record in sim.org.all_records(obj.name)
        if start <= _parse_stamp(record["SystemModstamp"]) < end
    ]
    return json_response({"ids": ids, "latestDateCovered": _stamp_text(end)})


def deleted_records(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    """getDeleted: records deleted between `start` and `end`, with when."""
    obj = object_or_404(sim.org, sobject)
    start, end = _replication_window(request)
    with sim.org.lock:
        deleted = list(sim.org.deleted.items())
    found = [
        {"id": record_id, "deletedDate": when}
        for record_id, (name, when) in deleted
        if name == obj.name and start <= _parse_stamp(when) < end
    ]
    earliest = min((_parse_stamp(d["deletedDate"]) for d in found), default=start)
    return json_response({"deletedRecords": found,
                          "earliestDateAvailable": _stamp_text(earliest),
                          "latestDateCovered": _stamp_text(end)})


def _parse_stamp(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _stamp_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _replication_window(request: Request) -> tuple[dt.datetime, dt.datetime]:
    """`start` and `end` of getUpdated / getDeleted, whole minutes as Salesforce counts."""
    try:
        start = _parse_stamp(request.args["start"]).replace(second=0, microsecond=0)
        end = _parse_stamp(request.args["end"]).replace(second=0, microsecond=0)
    except KeyError as missing:
        raise BadRequest("MISSING_ARGUMENT", f"{missing.args[0]} is required") from None
    except ValueError as error:
        raise BadRequest("INVALID_REPLICATION_DATE", f"not an ISO 8601 date: {error}") from None
    if end <= start:
        raise BadRequest("INVALID_REPLICATION_DATE", "end must be at least one minute after "
                          "start")
    return start, end
