"""The one style of the app's JSON answers: camelCase keys (the bulk-load and batch answers
follow Mule's names) and every time as UTC text ending in `Z`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def utc_text(value: datetime) -> str:
    """`2026-05-01T12:00:00.123456Z`: a naive time is taken as UTC (what the stores write)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def optional_utc_text(value: datetime | None) -> str | None:
    return utc_text(value) if value is not None else None


def camel_case(name: str) -> str:
    """`run_id`, `RunId` and `runId` all become `runId`."""
    head, *rest = name.split("_")
    return head[:1].lower() + head[1:] + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any) -> Any:
    """A stored row or a custom status with its keys in camelCase, nested ones too."""
    if isinstance(value, dict):
        return {camel_case(str(key)): camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


def answer_text(body: Any) -> str:
    """The answer's JSON text: a datetime anywhere in it written by `utc_text`."""
    return json.dumps(body, default=_json_value)


def _json_value(value: Any) -> str:
    return utc_text(value) if isinstance(value, datetime) else str(value)
