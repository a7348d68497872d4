"""What a durable API request asks: its query parameters and JSON body, read as the
Durable Functions extension's HTTP API handler reads them (a value it cannot read is left
out or defaulted, as there, unless the extension refuses it: InvalidBody, WaitTimes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

DEFAULT_PAGE_SIZE = 100  # OrchestrationStatusQueryCondition.PageSize
RUNTIME_STATES = (
    "Pending", "Running", "Completed", "ContinuedAsNew", "Failed", "Terminated",
    "Suspended", "Canceled",
)


class InvalidBody(Exception):
    """The request body is not UTF-8 JSON this API can hold (the message says why)."""


async def json_body_text(request: web.Request) -> str | None:
    """The body as sent when it is JSON (None when empty); InvalidBody otherwise."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not UTF-8 text ({error.reason} at byte "
                          f"{error.start})") from None
    if not text.strip():
        return None
    try:
        json.loads(text)
    except RecursionError:
        raise InvalidBody("the JSON body is nested too deeply") from None
    except ValueError as error:
        raise InvalidBody(f"the body is not JSON: {error}") from None
    return text


def bool_query(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name, "").lower()
    return value == "true" if value in ("true", "false") else default


def datetime_query(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def statuses_query(query: Any) -> list[str] | None:
    by_lower = {state.lower(): state for state in RUNTIME_STATES}
    wanted = [
        by_lower[part.strip().lower()]
        for value in query.getall("runtimeStatus", [])
        for part in value.split(",")
        if part.strip().lower() in by_lower
    ]
    return wanted or None


def seconds_query(query: Mapping[str, str], name: str) -> float | None:
    try:
        return float(query[name])
    except (KeyError, ValueError):
        return None


def page_size_query(query: Mapping[str, str]) -> int:
    """`top`, the extension's page size (100 unless given as a positive integer)."""
    try:
        top = int(query.get("top", ""))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return top if top > 0 else DEFAULT_PAGE_SIZE


class WaitTimes(ValueError):
    """`pollingInterval` is longer than `timeout` (the extension's ArgumentException)."""


def wait_query(query: Mapping[str, str]) -> tuple[float, float] | None:
    """(timeout, pollingInterval) in seconds when both are given, as the extension reads
    them; WaitTimes when the interval exceeds the timeout."""
    timeout = seconds_query(query, "timeout")
    interval = seconds_query(query, "pollingInterval")
    if timeout is None or interval is None:
        return None
    if interval > timeout:
        raise WaitTimes(
            f"Total timeout {timeout:g} should be bigger than retry timeout {interval:g}"
        )
    return timeout, interval
