"""What the orchestrator decides and reports, as pure functions of small dicts.

Nothing here does I/O or reads a clock: the orchestrator passes
`context.current_utc_datetime`, so replays compute the same values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
CUSTOM_STATUS_LIMIT = 16_000
MAX_JOBS_IN_STATUS = 20


def load_input(
    load_id: str, prefix: str, levels: Sequence[Mapping[str, Any]], records: Sequence[int],
    *, poll_interval: float, max_wait: float, upload_limit: int, activity_attempts: int,
    activity_retry_delay: float,
) -> dict[str, Any]:
    """The orchestration input: references and settings only, never records."""
    return {
        "loadId": load_id, "prefix": prefix, "levels": list(levels), "records": list(records),
        "pollInterval": poll_interval, "maxWait": max_wait, "uploadLimit": upload_limit,
        "activityAttempts": activity_attempts, "activityRetryDelay": activity_retry_delay,
    }


def poll_decision(jobs: Sequence[Mapping[str, Any]], now: datetime, deadline: datetime) -> str:
    """`done` when every job ended, `stalled` when the wait is over, else `wait`."""
    if all(job["state"] in TERMINAL_STATES for job in jobs):
        return "done"
    return "stalled" if now >= deadline else "wait"


def next_poll_at(now: datetime, interval: float, deadline: datetime) -> datetime:
    return min(now + timedelta(seconds=interval), deadline)


def running_job_ids(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [job["id"] for job in jobs if job["state"] not in TERMINAL_STATES]


def level_failure(jobs: Sequence[Mapping[str, Any]], stalled_ids: Sequence[str],
                  max_wait: float) -> str | None:
    """Why the level failed (a job Failed or Aborted, or stalled), or None."""
    reasons = []
    for job in jobs:
        if job["id"] in stalled_ids:
            reasons.append(f"job {job['id']} did not finish within {max_wait:g} s and was "
                           "aborted")
        elif job["state"] in ("Failed", "Aborted"):
            message = job.get("errorMessage") or "no errorMessage"
            reasons.append(f"job {job['id']} ended {job['state']}: {message}")
    return "; ".join(reasons) or None


def new_level_summary(level: Mapping[str, Any], records: int) -> dict[str, Any]:
    return {
        "level": level["name"], "object": level["object"], "operation": level["operation"],
        "state": "pending", "records": records, "jobs": [], "submitted": 0, "succeeded": 0,
        "failed": 0, "unprocessed": 0, "failedByError": {}, "orphansSkipped": 0,
        "elapsedSeconds": 0.0, "error": None,
    }


def finish_level(
    summary: dict[str, Any], *, staged: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]], results: Mapping[str, Any] | None,
    started: datetime, ended: datetime, error: str | None,
) -> dict[str, Any]:
    done = dict(summary)
    if staged is not None:
        done["submitted"] = staged["submitted"]
        done["orphansSkipped"] = staged["orphans"]
    done["jobs"] = [job["id"] for job in jobs]
    if results is not None:
        done.update(succeeded=results["succeeded"], failed=results["failed"],
                    unprocessed=results["unprocessed"],
                    failedByError=results["failedByError"])
    done["elapsedSeconds"] = round((ended - started).total_seconds(), 3)
    done["error"] = error
    if error is not None:
        done["state"] = "failed"
    elif staged is not None and staged["submitted"] == 0 and staged["orphans"] and \
            not jobs:
        done["state"] = "skipped"
    else:
        done["state"] = "completed"
    return done


def skipped_level(summary: dict[str, Any], staged: Mapping[str, Any] | None, reason: str,
                  at: datetime) -> dict[str, Any]:
    done = finish_level(summary, staged=staged, jobs=[], results=None, started=at, ended=at,
                        error=None)
    done["state"] = "skipped"
    done["error"] = reason
    return done


def cancel_reason(event_data: Any) -> str:
    """The reason a cancel request gave (`{"reason": ...}`), or a default.

    The Python durable client JSON-encodes event data a second time, so the orchestrator
    may receive the object as JSON text.
    """
    if isinstance(event_data, str):
        try:
            event_data = json.loads(event_data)
        except ValueError:
            return event_data[:500] or "no reason given"
    reason = event_data.get("reason") if isinstance(event_data, Mapping) else None
    return str(reason)[:500] if reason else "no reason given"


def load_outcome(levels: Sequence[Mapping[str, Any]]) -> str:
    if any(level["state"] == "failed" for level in levels):
        return "failed"
    if any(level["failed"] or level["unprocessed"] or level["orphansSkipped"] or
           level["state"] == "skipped" for level in levels):
        return "completed_with_failures"
    return "succeeded"


def load_summary(load: Mapping[str, Any], levels: Sequence[Mapping[str, Any]],
                 started: datetime, ended: datetime, failures: Mapping[str, Any] | None,
                 cancel_reason: str | None = None) -> dict[str, Any]:
    """The load's output; a cancelled load says so whatever its levels did before."""
    return {
        "loadId": load["loadId"],
        "outcome": "cancelled" if cancel_reason is not None else load_outcome(levels),
        "cancelReason": cancel_reason,
        "startedAt": started.isoformat(), "completedAt": ended.isoformat(),
        "elapsedSeconds": round((ended - started).total_seconds(), 3),
        "levels": list(levels),
        "failedRecords": None if failures is None else failures["rows"],
        "failuresUrl": f"/api/bulk-loads/{load['loadId']}/failures",
    }


def custom_status(
    load: Mapping[str, Any], level_index: int, phase: str,
    jobs: Sequence[Mapping[str, Any]], levels: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Progress for the Durable status API, kept under the 16 KB custom status limit."""
    level = load["levels"][level_index]
    status = {
        "loadId": load["loadId"], "phase": phase,
        "level": level["name"], "object": level["object"],
        "levelNumber": level_index + 1, "levelCount": len(load["levels"]),
        "jobs": [{key: job.get(key) for key in ("id", "state", "processed", "failed")}
                 for job in jobs[:MAX_JOBS_IN_STATUS]],
        "jobCount": len(jobs),
        "levels": [{key: summary[key] for key in
                    ("level", "state", "submitted", "succeeded", "failed", "orphansSkipped")}
                   for summary in levels],
    }
    if len(json.dumps(status)) > CUSTOM_STATUS_LIMIT:
        status["levels"] = []
    return status
