"""The body of `GET /api/sync/{job}`: lock state, progress, watermark, lag, last runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.problems import Problem, problem
from shared.sync.job import SyncJob
from shared.sync.lock import InstanceSnapshot, TickAction, TickDecision
from shared.sync.state import SyncState

LOCK_STATES = {
    TickAction.START: "free",
    TickAction.SKIP_BUSY: "running",
    TickAction.SKIP_HELD: "held",
    TickAction.TERMINATE_STUCK: "stuck",
    TickAction.SKIP_DISABLED: "disabled",
}


def unknown_job_problem(name: str, known: list[str], instance: str) -> Problem:
    """The 404 answer for a job name that is not configured."""
    return problem(
        404, "UNKNOWN_JOB", "Unknown sync job",
        f"there is no sync job named {name!r}; configured jobs: " + (", ".join(known) or "none"),
        instance,
    )


def job_status(
    job: SyncJob, state: SyncState, instance: InstanceSnapshot | None, decision: TickDecision,
    *, custom_status: Any, schedule: str | None, now: datetime, runs: int = 10,
) -> dict[str, Any]:
    kind = job.source.cursor_kind
    watermark = state.watermarks.read(job.name, kind, job.source.initial_position)
    lease = state.lease.read(job.name)
    lag = None
    if kind == "timestamp" and watermark.etag is not None:
        # The source stamps rows on its own clock; this assumes that clock is UTC.
        stamp = watermark.position.cursor
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        lag = round((now - stamp).total_seconds(), 3)
    return {
        "job": job.name,
        "description": job.description,
        "enabled": job.enabled,
        "schedule": {"setting": job.schedule_setting, "value": schedule},
        "instance_id": job.instance_id,
        "lock": {
            "state": LOCK_STATES[decision.action],
            "detail": decision.reason,
            "runtime_status": instance.runtime_status if instance else None,
            "run_id": instance.run_id if instance else None,
            "run_started_at": instance.run_started_at if instance else None,
            "lease": None if lease is None else {
                "run_id": lease.run_id, "locked_at": lease.locked_at,
                "locked_until": lease.locked_until,
            },
            "max_run_time_seconds": job.max_run_time.total_seconds(),
            "min_interval_seconds": job.min_interval.total_seconds(),
        },
        "progress": custom_status if isinstance(custom_status, dict) else None,
        "watermark": {
            "cursor_kind": kind,
            "cursor": job.source.codec.cursor_text(watermark.position.cursor),
            "key": list(watermark.position.key) if watermark.position.key else None,
            "stored": watermark.etag is not None,
            "run_id": watermark.run_id,
            "updated_at": watermark.updated_at,
        },
        "lag_seconds": lag,
        "last_runs": state.runs.last(job.name, runs),
        "ticks": state.ticks.read(job.name),
    }
