"""The shapes every API family answers in: Salesforce's JSON error arrays
`[{"message", "errorCode"}]`, OAuth errors `{"error", "error_description"}`, and the API
versions they serve. Handlers raise `BadRequest` (or a `JobError`, `RecordError`,
`soql.QueryError`) and the dispatcher answers it in this shape."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from sfsim.bulk_jobs import JobError
from sfsim.org import Org
from sfsim.schema import ObjectDef

API_VERSIONS = [f"{v}.0" for v in range(31, 67)]


def error_response(status: int, code: str, message: str, fields: list[str] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return json_response([body], status, headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers,
        content_type="application/json;charset=UTF-8",
    )


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


def json_body(request: Request, kind: type) -> Any:
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as error:
        raise BadRequest("JSON_PARSER_ERROR", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, kind):
        raise BadRequest("JSON_PARSER_ERROR", f"the body must be a JSON {kind.__name__}")
    return body


def object_or_404(org: Org, sobject: str) -> ObjectDef:
    obj = org.object_named(sobject)
    if obj is None:
        raise JobError(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
    return obj
