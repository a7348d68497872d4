"""Bulk loads as the console shows them: one small view per load, from its Durable status.

A load's numbers live in three places as it goes: its input (levels and record counts),
its custom status while it runs (per-level counts so far) and its output once it ended
(the summary). The view takes the most complete of them for each level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.answer_json import optional_utc_text
from shared.durable import BUSY_STATES, json_object

LEVEL_COUNTS = ("submitted", "succeeded", "failed", "unprocessed", "orphansSkipped")


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
    """The console's view of a load; URLs are relative to the API's route prefix."""
    given = json_object(load.load_input) or {}
    progress = json_object(load.custom_status) or {}
    summary = json_object(load.output) or {}
    busy = load.runtime_status in BUSY_STATES
    return {
        "loadId": load.load_id,
        "runtimeStatus": load.runtime_status,
        "createdAt": optional_utc_text(load.created_at),
        "updatedAt": optional_utc_text(load.updated_at),
        "phase": progress.get("phase"),
        "levelNumber": progress.get("levelNumber"),
        "outcome": summary.get("outcome"),
        "cancelReason": summary.get("cancelReason"),
        "elapsedSeconds": summary.get("elapsedSeconds"),
        "failedRecords": summary.get("failedRecords"),
        "levels": _levels(given, progress, summary),
        "cancelUrl": f"bulk-loads/{load.load_id}/cancel" if busy else None,
        "failuresUrl": None if busy else f"bulk-loads/{load.load_id}/failures",
    }


def _levels(given: dict[str, Any], progress: dict[str, Any],
            summary: dict[str, Any]) -> list[dict[str, Any]]:
    declared = [level for level in given.get("levels", []) if isinstance(level, dict)]
    records = given.get("records") or []
    ended = [level for level in summary.get("levels", []) if isinstance(level, dict)]
    running = [level for level in progress.get("levels", []) if isinstance(level, dict)]
    views = []
    for index in range(max(len(declared), len(ended), len(running))):
        source = _at(ended, index) or _at(running, index) or {}
        level = _at(declared, index) or {}
        views.append({
            "level": source.get("level") or level.get("name"),
            "object": source.get("object") or level.get("object"),
            "state": source.get("state", "pending"),
            "records": source.get("records", _at(records, index)),
            **{count: source.get(count, 0) for count in LEVEL_COUNTS},
            "error": source.get("error"),
        })
    return views


def _at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


