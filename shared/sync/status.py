"""The body of `GET /api/sync/{job}`: lock state, progress, rows per second of the current
and last runs, watermark, lag, last runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.answer_json import camel_keys, optional_utc_text
from shared.problems import Problem, problem
from shared.sync.job import SyncJob
from shared.sync.lock import InstanceSnapshot, LeaseHold, TickAction, TickDecision
from shared.sync.partitions import partition_totals
from shared.sync.state import SyncState, Watermark

# Named for what holds the lock (or that nothing does); `detail` says until when and why.
LOCK_STATES = {
    TickAction.START: "free",
    TickAction.SKIP_BUSY: "running",
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
    last_runs = [_run_answer(run) for run in state.runs.last(job.name, runs)]
    progress = custom_status if isinstance(custom_status, dict) else None
    return {
        "job": job.name,
        "description": job.description,
        "enabled": job.enabled,
        "schedule": {"setting": job.schedule_setting, "value": schedule},
        "instanceId": job.instance_id,
        "lock": {
            "state": lock_state(decision),
            "detail": decision.reason,
            "runtimeStatus": instance.runtime_status if instance else None,
            "runId": instance.run_id if instance else None,
            "runStartedAt": optional_utc_text(instance.run_started_at) if instance else None,
            "lease": None if lease is None else {
                "runId": lease.run_id, "lockedAt": optional_utc_text(lease.locked_at),
                "lockedUntil": optional_utc_text(lease.locked_until),
            },
            "maxRunTimeSeconds": job.max_run_time.total_seconds(),
            "minIntervalSeconds": job.min_interval.total_seconds(),
        },
        "progress": None if progress is None else _progress_answer(progress),
        "rowsPerSecond": {
            "current": current_rows_per_second(
                progress, instance, now, _checkpointed_rows(job, state, watermark, instance)),
            "last": next((run["rowsPerSecond"] for run in last_runs
                          if run.get("outcome") != "running"), None),
        },
        "watermark": {
            "cursorKind": kind,
            "cursor": job.source.codec.cursor_text(watermark.position.cursor),
            "key": list(watermark.position.key) if watermark.position.key else None,
            "stored": watermark.etag is not None,
            "runId": watermark.run_id,
            "updatedAt": optional_utc_text(_time(watermark.updated_at)),
        },
        "lagSeconds": lag,
        "lastRuns": last_runs,
        "ticks": _ticks_answer(state.ticks.read(job.name)),
    }


def lock_state(decision: TickDecision) -> str:
    """What holds the lock: `running`, `min_interval`, `lease` (a start under way or a run
    that has not released it), `stuck`, `disabled`; `free` when nothing does."""
    if decision.action is TickAction.SKIP_HELD:
        return (decision.hold or LeaseHold.LEASE).value
    return LOCK_STATES[decision.action]


def _run_answer(run: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = camel_keys(run)
    for name in ("startedAt", "endedAt"):
        if name in answer:
            answer[name] = optional_utc_text(_time(answer[name]))
    answer["rowsPerSecond"] = run_rows_per_second(run)
    return answer


def _progress_answer(progress: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = camel_keys(progress)
    if "startedAt" in answer:
        answer["startedAt"] = optional_utc_text(_time(answer["startedAt"]))
    return answer


def _ticks_answer(ticks: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = camel_keys(ticks)
    if "lastTick" in answer:
        answer["lastTick"] = optional_utc_text(_time(answer["lastTick"]))
    return answer


def _checkpointed_rows(job: SyncJob, state: SyncState, watermark: Watermark,
                       instance: InstanceSnapshot | None) -> int | None:
    """The rows the run under way checkpointed, with the watermark and in the rows of its
    key partitions: fresher than the orchestration's status, which a round updates. The
    rows are read whatever the setting says now: a run keeps the partitions it began with."""
    run_id = watermark.run_id
    if instance is None or not instance.busy or run_id is None or run_id != instance.run_id:
        return None
    return watermark.totals.rows + partition_totals(job, state, run_id).rows


def run_rows_per_second(run: dict[str, Any]) -> float | None:
    """Rows a run synced per second from its start to its end (None while it runs)."""
    started, ended = _time(run.get("StartedAt")), _time(run.get("EndedAt"))
    if started is None or ended is None or ended <= started:
        return None
    return round(int(run.get("Rows") or 0) / (ended - started).total_seconds(), 1)


def current_rows_per_second(progress: dict[str, Any] | None,
                            instance: InstanceSnapshot | None, now: datetime,
                            checkpointed_rows: int | None = None) -> float | None:
    """Rows per second of the run under way since it started: the rows it checkpointed,
    or those of its custom status when more (a backlog's Bulk API jobs report the rows
    they processed there; the watermark moves once they all ended)."""
    if progress is None or instance is None or not instance.busy:
        return None
    started = _time(progress.get("started_at"))
    if started is None or now <= started:
        return None
    rows = max(checkpointed_rows or 0, int(progress.get("rows") or 0))
    return round(rows / (now - started).total_seconds(), 1)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
