"""Problem+json answers (RFC 9457) of the host itself: a missing key, an unreadable body."""

from __future__ import annotations

from typing import Any

from aiohttp import web

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int, code: str, title: str, detail: str, instance: str, **extra: Any
) -> web.Response:
    """`instance` is the request path (never its query: it may hold a key); `extra`
    members follow the standard ones."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": instance, "code": code, **extra}
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


def unauthorized(request: web.Request) -> web.Response:
    return problem_response(
        401, "UNAUTHORIZED", "Unauthorized",
        "a valid key is required in the x-functions-key header or the code query parameter",
        request.path,
    )
