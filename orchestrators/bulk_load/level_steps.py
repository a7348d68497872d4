"""The steps of one level of a bulk load (1-4 of `bulk_load`), and a level skipped.

Each step is a sub-generator of the orchestration (called with `yield from`): it calls
activities (activities/bulk_load.py) and keeps what they answered in the level's
`LevelRun`; the decisions are `shared.bulkload.progress`'s. No I/O, no clock but
`context.current_utc_datetime`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from activities.bulk_load import (
    BULK_LOAD_ABORT_JOBS,
    BULK_LOAD_COLLECT_AND_STAGE,
    BULK_LOAD_COLLECT_RESULTS,
    BULK_LOAD_CREATE_JOB,
    BULK_LOAD_POLL_JOBS,
    BULK_LOAD_PREPARE_LEVEL,
    BULK_LOAD_REPORT_LEVEL_FAILURE,
    BULK_LOAD_STAGE_LEVEL,
    BULK_LOAD_SUBMIT_PART,
    BULK_LOAD_UPLOAD_PART,
)
from orchestrators.bulk_load.run_state import LevelRun, LoadRun, Steps
from shared.bulkload import progress
from shared.bulkload.messages import (
    CollectAndStageRequest,
    CollectAndStageResult,
    CollectResultsRequest,
    CreateJobRequest,
    JobSnapshot,
    JobSnapshots,
    JobsRequest,
    LevelError,
    LevelErrorCode,
    LevelResults,
    PrepareLevelRequest,
    ReportLevelFailureRequest,
    StagedLevel,
    StageLevelRequest,
    StopKind,
    StopReason,
    SubmitPartRequest,
    UploadPartRequest,
)
from shared.bulkload.progress import PollDecision


def load_level(run: LoadRun, index: int) -> Steps:
    """1-4 for one level, in order; the first step that fails ends the level with its
    error (its records without results reported with it), and a failed or cancelled
    level stops the load."""
    level = LevelRun(index, run.now)
    for code, step_name, step in _LEVEL_STEPS:
        try:
            yield from step(run, level)
        except Exception as failure:  # an activity out of retries: the level failed
            level.error = progress.activity_failure(code, step_name,
                                                    run.load.activity_attempts, failure)
            break
    if level.error is not None and level.results is None:
        yield from _report_level_failure(run, level)
    summary = progress.finish_level(
        run.summaries[index], staged=level.staged, jobs=level.jobs, results=level.results,
        started=level.started, ended=run.now, error=level.error)
    if run.cancel_reason is not None:
        summary = replace(summary, state="cancelled")
        run.stop = StopReason(StopKind.CANCELLED, f"load cancelled: {run.cancel_reason}")
    elif level.error is not None:
        run.stop = StopReason(
            StopKind.LEVEL_FAILED,
            f"level {run.load.levels[index].name} failed: {level.error.as_error()}")
    run.summaries[index] = summary


def _stage(run: LoadRun, level: LevelRun) -> Steps:
    """1. The level's CSV, without the children of parents that were not loaded."""
    level.staged = run.staged_ahead.pop(level.index, None)
    if level.staged is not None:  # by the step before
        return
    run.show(level.index, "staging", level.jobs)
    answer = yield run.call(BULK_LOAD_STAGE_LEVEL, StageLevelRequest(
        run.load.prefix, run.load.levels, level.index, run.load.upload_limit))
    level.staged = StagedLevel.from_json(answer)


def _submit_parts(run: LoadRun, level: LevelRun) -> Steps:
    """2. One job per part: create, upload, close."""
    assert level.staged is not None
    level.jobs.extend(run.submitted_ahead.pop(level.index, ()))  # by the step before
    for number, part in enumerate(level.staged.parts):
        if number < len(level.jobs):
            continue
        if run.load.combined_steps:
            run.show(level.index, "uploading", level.jobs)
            submitted = yield run.call(BULK_LOAD_SUBMIT_PART, SubmitPartRequest(
                run.load.levels[level.index], run.load.load_id, level.index, number,
                run.load.prefix, part.blob))
            level.jobs.append(JobSnapshot.from_json(submitted))
            continue
        created = yield run.call(BULK_LOAD_CREATE_JOB, CreateJobRequest(
            run.load.levels[level.index], run.load.load_id, level.index, number))
        level.jobs.append(JobSnapshot.from_json(created))
        run.show(level.index, "uploading", level.jobs)
        uploaded = yield run.call(BULK_LOAD_UPLOAD_PART,
                                  UploadPartRequest(run.load.prefix, level.jobs[-1].id, part.blob))
        level.jobs[-1] = JobSnapshot.from_json(uploaded)
    # Not waited for here: the first wait for a poll sends it, so it runs while Salesforce
    # runs the jobs.
    children = [index for index, child in enumerate(run.load.levels)
                if child.parent == level.index and run.load.prepare_children]
    level.preparing = [run.call_once(BULK_LOAD_PREPARE_LEVEL,
                                     PrepareLevelRequest(run.load.prefix, child,
                                                         run.load.body_digest))
                       for child in children]


def _poll_until_ended(run: LoadRun, level: LevelRun) -> Steps:
    """3. Durable timers until every job ended; abort at max wait or on a cancel."""
    deadline = run.now + timedelta(seconds=run.load.max_wait)
    polls = 0
    due = closed_at = run.now
    closed = list(level.jobs)
    while level.jobs:
        now = run.now
        decision = progress.poll_decision(level.jobs, now, deadline)
        if decision is PollDecision.DONE:
            break
        if decision is PollDecision.STALLED:
            level.stalled = progress.running_job_ids(level.jobs)
            yield from _abort(run, level, "aborting")
            break
        run.show(level.index, "waiting", level.jobs)
        due = _next_poll_at(run, level, due, closed_at, polls, deadline)
        next_poll = run.context.create_timer(due)
        polls += 1
        woken_by = yield run.context.task_any([next_poll, run.cancel_requested,
                                               *level.preparing])
        while woken_by in level.preparing:  # a child level is prepared: wait on
            level.preparing.remove(woken_by)
            woken_by = yield run.context.task_any([next_poll, run.cancel_requested,
                                                   *level.preparing])
        if woken_by is run.cancel_requested:
            # create_timer is annotated TaskBase; it returns a TimerTask, which can cancel.
            next_poll.cancel()  # type: ignore[attr-defined]
            run.cancel_reason = progress.cancel_reason(run.cancel_requested.result)
            yield from _abort(run, level, "cancelling")
            break
        polled = yield run.call(BULK_LOAD_POLL_JOBS,
                                JobsRequest(tuple(job.id for job in level.jobs)))
        level.jobs = list(JobSnapshots.from_json(polled).jobs)
    if run.load.predicted_polls:
        run.pace = progress.observed_pace(closed, level.jobs) or run.pace
    level.error = progress.level_failure(level.jobs, level.stalled, run.load.max_wait)
    if run.cancel_reason is not None:
        level.error = LevelError(LevelErrorCode.CANCELLED, f"cancelled: {run.cancel_reason}")
    yield from _children_prepared(run, level)


def _next_poll_at(run: LoadRun, level: LevelRun, due: datetime, closed_at: datetime, polls: int,
                  deadline: datetime) -> datetime:
    """At the jobs' predicted end once a level before has shown Salesforce's pace
    (predicted_polls); else soon after the close, then backing off to the interval."""
    now = run.now
    if run.load.predicted_polls and run.pace is not None and level.staged is not None:
        return progress.predicted_poll_at(
            level.jobs, [part.records for part in level.staged.parts], run.pace, closed_at,
            now, run.load.poll_interval, deadline)
    return progress.next_poll_at(due, now, polls, run.load.first_poll_delay,
                                 run.load.poll_interval, deadline)


def _children_prepared(run: LoadRun, level: LevelRun) -> Steps:
    """The child levels' preparation has ended (as a rule while the jobs ran); a child
    that could not be prepared is staged from its records instead."""
    if not level.preparing:
        return
    try:
        yield run.context.task_all(level.preparing)
    except Exception:  # staging reads the records itself
        return


def _abort(run: LoadRun, level: LevelRun, phase: str) -> Steps:
    """Abort the level's running jobs and keep how each ended."""
    run.show(level.index, phase, level.jobs)
    aborted = yield run.call(BULK_LOAD_ABORT_JOBS,
                             JobsRequest(progress.running_job_ids(level.jobs)))
    level.jobs = progress.merge_jobs(level.jobs, JobSnapshots.from_json(aborted).jobs)


def _collect_results(run: LoadRun, level: LevelRun) -> Steps:
    """4. The ID map for the next level, failed and unprocessed records."""
    assert level.staged is not None
    run.show(level.index, "reading results", level.jobs)
    collect = CollectResultsRequest(run.load.prefix, run.load.levels, level.index,
                                    tuple(level.jobs), level.staged.columns)
    if not run.load.combined_steps:
        answer = yield run.call(BULK_LOAD_COLLECT_RESULTS, collect)
        level.results = LevelResults.from_json(answer)
        return
    # The next level staged in the same activity, unless this level stops the load.
    following = level.index + 1
    stage_next = None
    if (following < len(run.load.levels) and level.error is None
            and run.cancel_reason is None and not run.cancel_requested.is_completed):
        stage_next = StageLevelRequest(run.load.prefix, run.load.levels, following,
                                       run.load.upload_limit)
    answer = yield run.call(BULK_LOAD_COLLECT_AND_STAGE, CollectAndStageRequest(
        collect, stage_next, run.submit_load_id if stage_next is not None else None))
    collected = CollectAndStageResult.from_json(answer)
    level.results = collected.results
    if collected.staged_next is not None:
        run.staged_ahead[following] = collected.staged_next
    if collected.submitted_next:
        run.submitted_ahead[following] = collected.submitted_next


def skip_level(run: LoadRun, index: int) -> Steps:
    """A level after the load stopped: its records are reported as orphans, with why."""
    assert run.stop is not None
    run.show(index, "skipping")
    try:
        answer = yield run.call(BULK_LOAD_STAGE_LEVEL, StageLevelRequest(
            run.load.prefix, run.load.levels, index, run.load.upload_limit, skip=run.stop))
        staged: StagedLevel | None = StagedLevel.from_json(answer)
    except Exception:  # the level is skipped either way; the report says so
        staged = None
    run.summaries[index] = progress.skipped_level(run.summaries[index], staged, run.stop,
                                                  run.now)


def _report_level_failure(run: LoadRun, level: LevelRun) -> Steps:
    """Every record of a level that failed before its results were read, with its error."""
    assert level.error is not None
    try:
        answer = yield run.call(BULK_LOAD_REPORT_LEVEL_FAILURE, ReportLevelFailureRequest(
            run.load.prefix, run.load.levels, level.index, level.error))
    except Exception:  # the summary still tells what happened
        return
    level.results = LevelResults.from_json(answer)


# Each step of a level, with the code and words its failure is reported under.
_LEVEL_STEPS: tuple[tuple[LevelErrorCode, str, Any], ...] = (
    (LevelErrorCode.STAGING_FAILED, "staging the level's CSV", _stage),
    (LevelErrorCode.SALESFORCE_UNAVAILABLE, "creating, uploading or closing an ingest job",
     _submit_parts),
    (LevelErrorCode.SALESFORCE_UNAVAILABLE, "checking the ingest jobs", _poll_until_ended),
    (LevelErrorCode.RESULTS_UNAVAILABLE, "reading the jobs' results", _collect_results),
)
