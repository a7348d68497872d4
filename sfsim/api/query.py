"""SOQL over REST: `query`, `queryAll` and the `nextRecordsUrl` pages after the first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sfsim import soql
from sfsim.api.shapes import error_response, json_response

if TYPE_CHECKING:
    from sfsim.app import Simulator

QUERY_BATCH = 2000


def query(sim: Simulator, request: Request, version: str) -> Response:
    text = request.args.get("q")
    if not text:
        return error_response(400, "MALFORMED_QUERY", "A query string has to be specified")
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
