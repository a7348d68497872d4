"""A bulk load's log events: its start, each level's staging, jobs and end, the load's end.

Each is one `log_event` with the load's id and counts as fields (custom dimensions in
Application Insights), so an operator filters a load's lines on `customDimensions.load_id`
and the alerts find loads that failed or never ended (infra/modules/alerts.bicep). They are
logged by the endpoint that starts a load and by the activities (an activity may run more
than once, so may its line); the orchestration logs nothing, as it replays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from shared.bulkload.messages import JobSnapshot, LevelError, LevelResults, LoadInput, StagedLevel
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore
from shared.log_fields import log_event

log = logging.getLogger(__name__)

# The load's outcome (shared/bulkload/progress.py load_outcome) and the level it is logged at.
_OUTCOME_LEVELS = {"succeeded": logging.INFO, "completed_with_failures": logging.WARNING,
                   "cancelled": logging.WARNING, "failed": logging.ERROR}


def load_id_of(store: LoadStore) -> str:
    """The load a run folder belongs to (`{load id}/{run}`, see store.py)."""
    return store.prefix.split("/", 1)[0]


def log_load_started(load: LoadInput) -> None:
    log_event(log, "bulk load started", load_id=load.load_id, levels=len(load.levels),
              records=sum(load.records), retry_of=load.origin)


def log_level_staged(store: LoadStore, levels: Sequence[LoadLevel], level_index: int,
                     staged: StagedLevel, skipped: bool) -> None:
    level = levels[level_index]
    log_event(log, "bulk load level staged", load_id=load_id_of(store), level_name=level.name,
              level_number=level_index + 1, object=level.object, submitted=staged.submitted,
              orphans=staged.orphans, parts=len(staged.parts), skipped=skipped)


def log_job_created(level: LoadLevel, job: JobSnapshot) -> None:
    log_event(log, "bulk load job created", job_id=job.id, level_name=level.name,
              object=level.object, operation=level.operation, state=job.state)


def log_job_closed(store: LoadStore, job: JobSnapshot) -> None:
    log_event(log, "bulk load job closed", load_id=load_id_of(store), job_id=job.id,
              state=job.state)


def log_level_ended(store: LoadStore, levels: Sequence[LoadLevel], level_index: int,
                    jobs: Sequence[JobSnapshot], results: LevelResults) -> None:
    """Every job of the level as it ended, then the level's counts."""
    level = levels[level_index]
    load_id = load_id_of(store)
    for job in jobs:
        log_event(log, "bulk load job ended",
                  level=logging.WARNING if job.unsuccessful else logging.INFO,
                  load_id=load_id, job_id=job.id, level_number=level_index + 1,
                  state=job.state, processed=job.processed, failed=job.failed)
    unsuccessful = sum(1 for job in jobs if job.unsuccessful)
    outcome = ("failed" if unsuccessful else
               "completed_with_failures" if results.failed or results.unprocessed else
               "succeeded")
    log_event(log, "bulk load level ended", level=_OUTCOME_LEVELS[outcome], load_id=load_id,
              level_number=level_index + 1, object=level.object, outcome=outcome,
              jobs=len(jobs), jobs_unsuccessful=unsuccessful, succeeded=results.succeeded,
              failed=results.failed, unprocessed=results.unprocessed)


def log_level_failed(store: LoadStore, levels: Sequence[LoadLevel], level_index: int,
                     error: LevelError, results: LevelResults) -> None:
    """A level that failed before its jobs' results were read."""
    log_event(log, "bulk load level ended", level=logging.ERROR, load_id=load_id_of(store),
              level_number=level_index + 1, object=levels[level_index].object,
              outcome="failed", error_code=error.code.value, failed=results.failed)


def log_load_ended(load_id: str, summary: str) -> None:
    """The load's end, from its summary (progress.load_summary's JSON)."""
    ended = json.loads(summary)
    outcome = str(ended.get("outcome"))
    log_event(log, "bulk load ended", level=_OUTCOME_LEVELS.get(outcome, logging.WARNING),
              load_id=load_id, outcome=outcome, levels=len(ended.get("levels") or ()),
              loaded_records=ended.get("loadedRecords"),
              failed_records=ended.get("failedRecords"),
              elapsed_seconds=ended.get("elapsedSeconds"), retry_of=ended.get("retryOf"),
              cancel_reason=ended.get("cancelReason"))
