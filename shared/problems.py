"""RFC 9457 problem documents: what every HTTP endpoint of the app answers on bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Problem:
    status: int
    body: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.body)


def problem(status: int, code: str, title: str, detail: str, instance: str,
            **extra: Any) -> Problem:
    """A problem document; `instance` is the request path (never its query: it may hold a key).

    `code` is the machine-readable reason clients branch on (UPPER_SNAKE_CASE); `extra`
    members (such as the list of `errors`) follow the standard ones.
    """
    return Problem(status, {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, "instance": instance, "code": code, **extra})
