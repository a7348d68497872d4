"""What the bulk_load orchestrator decides and reports, as pure functions.

Nothing here does I/O or reads a clock: the orchestrator passes
`context.current_utc_datetime`, so replays compute the same values. The summary and the
custom status are what users read (the Durable status API): their keys are an API.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.answer_json import utc_text
from shared.bulkload.messages import (
    FailuresReport,
    JobSnapshot,
    LevelError,
    LevelErrorCode,
    LevelResults,
    LoadInput,
    StagedLevel,
    StopReason,
)
from shared.bulkload.request import LoadLevel
from shared.durable import one_line

CUSTOM_STATUS_LIMIT = 16_000
MAX_JOBS_IN_STATUS = 20


class PollDecision(enum.Enum):
    DONE = "done"  # every job ended
    STALLED = "stalled"  # the wait is over: abort what still runs
    WAIT = "wait"


def poll_decision(jobs: Sequence[JobSnapshot], now: datetime, deadline: datetime) -> PollDecision:
    if all(job.ended for job in jobs):
        return PollDecision.DONE
    return PollDecision.STALLED if now >= deadline else PollDecision.WAIT


def next_poll_at(last_due: datetime, now: datetime, polls_done: int, first_delay: float,
                 interval: float, deadline: datetime) -> datetime:
    """Soon after the jobs were closed, then backing off (doubling) to `interval`.

    Small jobs end within a second or two: a first look after `first_delay` saves most of
    a whole interval; a long job is polled every `interval`. The delay counts from when
    the previous check was due, not from when its answer came back, so the time a check
    takes does not stretch the schedule.
    """
    delay = min(interval, first_delay * 2 ** min(polls_done, 30))
    return min(max(last_due + timedelta(seconds=delay), now), deadline)


# The shortest wait between two polls of a predicted schedule: a job found running just
# past its predicted end is looked at again this soon at the earliest.
MIN_POLL_SECONDS = 0.2
# A job found running past its predicted end is slower than the level before: it is looked
# at again no sooner than this share of the time since its close, so a job much slower than
# predicted costs a few polls (their gaps grow with its age), not one every 0.2 s.
PAST_PREDICTION_SHARE = 0.25


@dataclass(frozen=True)
class JobPace:
    """How Salesforce ran a level's jobs: how long they were queued before their records
    were applied, and how many records it applied a second."""

    queued_seconds: float
    records_per_second: float


def observed_pace(closed: Sequence[JobSnapshot], ended: Sequence[JobSnapshot]) -> JobPace | None:
    """The pace of the jobs that completed, from their snapshots at the close and at the end
    (Salesforce's own timestamps, so no clock of ours is compared with its); None when none
    tells (no records applied, or snapshots without the times)."""
    closed_at = {job.id: job.changed_at for job in closed if job.state == "UploadComplete"}
    queued: list[float] = []
    active = 0.0
    records = 0
    for job in ended:
        start = closed_at.get(job.id)
        if (job.state != "JobComplete" or start is None or job.changed_at is None
                or not job.active_seconds or job.processed <= 0):
            continue
        wall = (job.changed_at - start).total_seconds()
        queued.append(max(0.0, wall - job.active_seconds))
        active += job.active_seconds
        records += job.processed
    if not queued:
        return None
    return JobPace(sum(queued) / len(queued), records / active)


def predicted_poll_at(jobs: Sequence[JobSnapshot], records: Sequence[int], pace: JobPace,
                      closed_at: datetime, now: datetime, interval: float,
                      deadline: datetime) -> datetime:
    """When the level's last running job should have ended, at the pace of a level before.

    Each job (of `records` records, closed at `closed_at`) is queued as long as those were
    and applies its records as fast. One still running past that applies the records it
    has not yet applied at that speed from now, but is looked at again no sooner than
    PAST_PREDICTION_SHARE of its age. A poll earlier than the prediction only costs an API
    call, a later one waits past the end: the poll is at the prediction, but never more
    than `interval` (BULK_LOAD_POLL_INTERVAL) after now, nor sooner than MIN_POLL_SECONDS,
    nor after the deadline.
    """
    ends = []
    age = (now - closed_at).total_seconds()
    for job, count in zip(jobs, records, strict=False):
        if job.ended:
            continue
        end = closed_at + timedelta(
            seconds=pace.queued_seconds + count / pace.records_per_second)
        if end <= now:  # slower than the level before
            left = max(0, count - job.processed) / pace.records_per_second
            end = now + timedelta(seconds=max(left, PAST_PREDICTION_SHARE * age))
        ends.append(end)
    soonest = now + timedelta(seconds=min(MIN_POLL_SECONDS, interval))
    latest = now + timedelta(seconds=interval)
    return min(max(max(ends, default=soonest), soonest), latest, deadline)


def running_job_ids(jobs: Sequence[JobSnapshot]) -> tuple[str, ...]:
    return tuple(job.id for job in jobs if not job.ended)


def merge_jobs(jobs: Sequence[JobSnapshot], newer: Sequence[JobSnapshot]) -> list[JobSnapshot]:
    """`jobs` in their order, each replaced by its newer snapshot where there is one."""
    by_id = {job.id: job for job in newer}
    return [by_id.get(job.id, job) for job in jobs]


def level_failure(jobs: Sequence[JobSnapshot], stalled_ids: Sequence[str],
                  max_wait: float) -> LevelError | None:
    """Why the level failed (a job Failed or Aborted, or stalled), or None."""
    reasons = []
    code = LevelErrorCode.JOB_FAILED
    for job in jobs:
        if job.id in stalled_ids:
            code = LevelErrorCode.JOB_STALLED
            reasons.append(f"job {job.id} did not finish within {max_wait:g} s and was "
                           "aborted")
        elif job.unsuccessful:
            message = one_line(job.error_message or "no errorMessage")
            reasons.append(f"job {job.id} ended {job.state}: {message}")
    return LevelError(code, "; ".join(reasons)) if reasons else None


def activity_failure(code: LevelErrorCode, step: str, attempts: int,
                     failure: BaseException) -> LevelError:
    """The level's error when an activity failed after its retries: a code and one line."""
    return LevelError(code, f"{step} failed after {attempts} tries: {one_line(str(failure))}")


@dataclass(frozen=True)
class LevelSummary:
    """One level in the load's summary (its `levels` list)."""

    level: str
    object: str
    operation: str
    records: int
    state: str = "pending"
    jobs: tuple[str, ...] = ()
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    unprocessed: int = 0
    failed_by_error: Mapping[str, int] = field(default_factory=dict)
    orphans_skipped: int = 0
    elapsed_seconds: float = 0.0
    error: str | None = None
    error_code: str | None = None

    @classmethod
    def pending(cls, level: LoadLevel, records: int) -> LevelSummary:
        return cls(level.name, level.object, level.operation, records)

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level, "object": self.object, "operation": self.operation,
            "state": self.state, "records": self.records, "jobs": list(self.jobs),
            "submitted": self.submitted, "succeeded": self.succeeded, "failed": self.failed,
            "unprocessed": self.unprocessed, "failedByError": dict(self.failed_by_error),
            "orphansSkipped": self.orphans_skipped, "elapsedSeconds": self.elapsed_seconds,
            "error": self.error, "errorCode": self.error_code,
        }


def finish_level(
    summary: LevelSummary, *, staged: StagedLevel | None, jobs: Sequence[JobSnapshot],
    results: LevelResults | None, started: datetime, ended: datetime,
    error: LevelError | None,
) -> LevelSummary:
    done = dataclasses.replace(summary, jobs=tuple(job.id for job in jobs),
                               elapsed_seconds=round((ended - started).total_seconds(), 3),
                               error=error.message if error else None,
                               error_code=error.code.value if error else None)
    if staged is not None:
        done = dataclasses.replace(done, submitted=staged.submitted,
                                   orphans_skipped=staged.orphans)
    if results is not None:
        done = dataclasses.replace(done, succeeded=results.succeeded, failed=results.failed,
                                   unprocessed=results.unprocessed,
                                   failed_by_error=results.failed_by_error)
    if error is not None:
        state = "failed"
    elif staged is not None and staged.submitted == 0 and staged.orphans and not jobs:
        state = "skipped"
    else:
        state = "completed"
    return dataclasses.replace(done, state=state)


def skipped_level(summary: LevelSummary, staged: StagedLevel | None, reason: StopReason,
                  at: datetime) -> LevelSummary:
    done = finish_level(summary, staged=staged, jobs=[], results=None, started=at, ended=at,
                        error=None)
    return dataclasses.replace(done, state="skipped", error=reason.message,
                               error_code=reason.kind.value)


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


def load_outcome(levels: Sequence[LevelSummary]) -> str:
    if any(level.state == "failed" for level in levels):
        return "failed"
    if any(level.failed or level.unprocessed or level.orphans_skipped or
           level.state == "skipped" for level in levels):
        return "completed_with_failures"
    return "succeeded"


def load_links(load_id: str) -> dict[str, str]:
    """The app's own URLs of a load, relative to the API's route prefix (`/api`): all of them
    under the function key, none of them the Durable API's (which needs the system key)."""
    base = f"/api/bulk-loads/{load_id}"
    return {"statusUrl": base, "resultsUrl": f"{base}/results",
            "failuresUrl": f"{base}/failures", "cancelUrl": f"{base}/cancel",
            "retryFailuresUrl": f"{base}/retry-failures"}


def load_summary(load: LoadInput, levels: Sequence[LevelSummary], started: datetime,
                 ended: datetime, reports: FailuresReport | None,
                 cancel_reason: str | None = None) -> dict[str, Any]:
    """The load's output; a cancelled load says so whatever its levels did before."""
    links = load_links(load.load_id)
    summary: dict[str, Any] = {
        "loadId": load.load_id,
        "outcome": "cancelled" if cancel_reason is not None else load_outcome(levels),
        "cancelReason": cancel_reason,
        "retryOf": load.origin,
        "startedAt": utc_text(started), "completedAt": utc_text(ended),
        "elapsedSeconds": round((ended - started).total_seconds(), 3),
        "levels": [level.to_json() for level in levels],
        "failedRecords": None,
        "loadedRecords": sum(level.succeeded for level in levels),
        "failuresUrl": links["failuresUrl"],
        "resultsUrl": links["resultsUrl"],
    }
    return summary if reports is None else with_failures_report(summary, reports)


def with_failures_report(summary: dict[str, Any], reports: FailuresReport) -> dict[str, Any]:
    """The summary with the failures report's row count (its records not loaded)."""
    return {**summary, "failedRecords": reports.rows}


def earlier_summary(text: str) -> dict[str, Any]:
    """The summary a refused restart answers: the one of the execution that loaded."""
    summary: dict[str, Any] = json.loads(text)
    return summary


def custom_status(
    load: LoadInput, level_index: int, phase: str, jobs: Sequence[JobSnapshot],
    levels: Sequence[LevelSummary],
) -> dict[str, Any]:
    """Progress for the Durable status API, kept under the 16 KB custom status limit."""
    level = load.levels[level_index]
    status: dict[str, Any] = {
        "loadId": load.load_id, "phase": phase,
        "level": level.name, "object": level.object,
        "levelNumber": level_index + 1, "levelCount": len(load.levels),
        "jobs": [{"id": job.id, "state": job.state, "processed": job.processed,
                  "failed": job.failed} for job in jobs[:MAX_JOBS_IN_STATUS]],
        "jobCount": len(jobs),
        "processed": sum(job.processed for job in jobs),
        "levels": [{"level": summary.level, "state": summary.state,
                    "records": summary.records,
                    "submitted": summary.submitted, "succeeded": summary.succeeded,
                    "failed": summary.failed, "unprocessed": summary.unprocessed,
                    "orphansSkipped": summary.orphans_skipped}
                   for summary in levels],
    }
    if len(json.dumps(status)) > CUSTOM_STATUS_LIMIT:
        status["levels"] = []
    return status


def completed_status(load: LoadInput, summary: Mapping[str, Any]) -> dict[str, Any]:
    return {"loadId": load.load_id, "phase": "completed", "outcome": summary["outcome"]}
