"""A load as `GET /api/bulk-loads[/{loadId}]` shows it, from its Durable status.

A load's numbers live in three places as it goes: its input (levels and record counts),
its custom status while it runs (per-level counts so far, the current level's jobs) and
its output once it ended (the summary). The view takes the most complete of them for each
level and adds how far each level got, in percent of its records.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.answer_json import optional_utc_text
from shared.bulkload.progress import load_links
from shared.durable import BUSY_STATES, json_object

LEVEL_COUNTS = ("submitted", "succeeded", "failed", "unprocessed", "orphansSkipped")
ENDED_LEVEL_STATES = frozenset({"completed", "failed", "skipped", "cancelled"})


@dataclass(frozen=True)
class LoadSnapshot:
    """What `get_status(load_id, show_input=True)` told about one load."""

    load_id: str
    runtime_status: str
    created_at: datetime | None
    updated_at: datetime | None
    load_input: Any
    custom_status: Any
    output: Any


def load_view(load: LoadSnapshot) -> dict[str, Any]:
    """Where a load is: per level, its counts and percent; once ended, its summary too."""
    given = json_object(load.load_input) or {}
    progress = json_object(load.custom_status) or {}
    summary = json_object(load.output)
    busy = load.runtime_status in BUSY_STATES
    levels = _levels(given, progress, summary or {}, busy)
    records = sum(level["records"] or 0 for level in levels)
    done = sum((level["records"] or 0) * level["percent"] / 100 for level in levels)
    links = load_links(load.load_id)
    return {
        "loadId": load.load_id,
        "runtimeStatus": load.runtime_status,
        "createdAt": _iso(load.created_at),
        "updatedAt": _iso(load.updated_at),
        "retryOf": given.get("origin"),
        "phase": progress.get("phase"),
        "levelNumber": progress.get("levelNumber"),
        "percent": round(100 * done / records, 1) if records else (0.0 if busy else 100.0),
        "outcome": (summary or {}).get("outcome"),
        "levels": levels,
        "summary": summary,
        # Ended without a summary (terminated, or failed before it loaded): why, if known.
        "error": load.output if isinstance(load.output, str) and summary is None else None,
        "statusUrl": links["statusUrl"],
        "cancelUrl": links["cancelUrl"] if busy else None,
        "failuresUrl": None if busy else links["failuresUrl"],
        "resultsUrl": None if busy else links["resultsUrl"],
        "retryFailuresUrl": None if busy else links["retryFailuresUrl"],
    }


def _levels(given: dict[str, Any], progress: dict[str, Any], summary: dict[str, Any],
            busy: bool) -> list[dict[str, Any]]:
    declared = [level for level in given.get("levels", []) if isinstance(level, dict)]
    records = given.get("records") or []
    ended = [level for level in summary.get("levels", []) if isinstance(level, dict)]
    running = [level for level in progress.get("levels", []) if isinstance(level, dict)]
    current = (progress.get("levelNumber") or 0) - 1 if busy else -1
    views = []
    for index in range(max(len(declared), len(ended), len(running))):
        source = _at(ended, index) or _at(running, index) or {}
        level = _at(declared, index) or {}
        count = source.get("records", _at(records, index))
        state = source.get("state", "pending")
        if index == current and state == "pending":
            state = progress.get("phase") or "running"
        if index == current:
            processed = progress.get("processed", 0)
        elif state in ENDED_LEVEL_STATES:  # what Salesforce processed: loaded or refused
            processed = source.get("succeeded", 0) + source.get("failed", 0)
        else:
            processed = 0
        views.append({
            "level": source.get("level") or level.get("name"),
            "object": source.get("object") or level.get("object"),
            "state": state,
            "records": count,
            **{name: source.get(name, 0) for name in LEVEL_COUNTS},
            "processed": processed,
            "percent": _percent(state, count, processed),
            "error": source.get("error"),
            "errorCode": source.get("errorCode"),
        })
    return views


def _percent(state: str, records: Any, processed: Any) -> float:
    if state in ENDED_LEVEL_STATES:
        return 100.0
    if not isinstance(records, int) or records <= 0 or not isinstance(processed, int):
        return 0.0
    return round(min(100.0, 100 * processed / records), 1)


def _at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


def _iso(value: datetime | None) -> str | None:
    return optional_utc_text(value)


# -- paging the list ------------------------------------------------------------------------


def page_token(created_at: datetime | None, load_id: str) -> str:
    """An opaque position in the list (newest first): the last load of a page."""
    text = f"{created_at.isoformat() if created_at else ''}|{load_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_page_token(token: str) -> tuple[str, str] | None:
    """(created_at ISO text, load id) of a token, or None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    created, separator, load_id = text.partition("|")
    return (created, load_id) if separator and load_id else None
