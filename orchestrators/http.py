"""What the HTTP starters share: the request path to echo and problem+json answers."""

from __future__ import annotations

from urllib.parse import urlparse

import azure.functions as func

from shared.problems import PROBLEM_JSON, Problem


def request_path(req: func.HttpRequest) -> str:
    # The query string may carry the function key: never echo it.
    path: str = urlparse(req.url).path
    return path


def problem_response(answer: Problem, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(answer.text(), status_code=answer.status, mimetype=PROBLEM_JSON,
                             headers=headers)
