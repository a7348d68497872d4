"""The bulk_load orchestration: a parent-child load, level by level (see `bulk_load`).

It only decides: every read and write of records, CSV and jobs is an activity
(activities/bulk_load.py), and what it keeps in history are blob names, counts and job
states. No clock but `context.current_utc_datetime`.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities.bulk_load import (
    BULK_LOAD_ABORT_JOBS,
    BULK_LOAD_CLAIM_AND_STAGE,
    BULK_LOAD_CLAIM_RUN,
    BULK_LOAD_COLLECT_AND_STAGE,
    BULK_LOAD_COLLECT_RESULTS,
    BULK_LOAD_CREATE_JOB,
    BULK_LOAD_FINISH,
    BULK_LOAD_KEEP_SUMMARY,
    BULK_LOAD_POLL_JOBS,
    BULK_LOAD_PREPARE_LEVEL,
    BULK_LOAD_REPORT_LEVEL_FAILURE,
    BULK_LOAD_STAGE_LEVEL,
    BULK_LOAD_SUBMIT_PART,
    BULK_LOAD_UPLOAD_PART,
    BULK_LOAD_WRITE_REPORTS,
)
from shared.bulkload import progress
from shared.bulkload.messages import (
    ClaimAndStageRequest,
    ClaimAndStageResult,
    ClaimRunRequest,
    ClaimRunResult,
    CollectAndStageRequest,
    CollectAndStageResult,
    CollectResultsRequest,
    CreateJobRequest,
    FailuresReport,
    FinishLoadRequest,
    JobSnapshot,
    JobSnapshots,
    JobsRequest,
    KeepSummaryRequest,
    LevelError,
    LevelErrorCode,
    LevelResults,
    LoadInput,
    PrepareLevelRequest,
    ReportLevelFailureRequest,
    StagedLevel,
    StageLevelRequest,
    StopKind,
    StopReason,
    SubmitPartRequest,
    UploadPartRequest,
    WriteFailuresRequest,
)
from shared.bulkload.progress import JobPace, LevelSummary, PollDecision
from shared.messages import Message

blueprint = df.Blueprint()

ORCHESTRATOR = "bulk_load"
CANCEL_EVENT = "cancel"

Steps = Generator[Any, Any, Any]


class LoadRestartRefused(Exception):
    """A restart through the Durable API would send the load's records a second time."""


@dataclass
class _Load:
    """The orchestration's own state while it runs (rebuilt by every replay)."""

    context: df.DurableOrchestrationContext
    load: LoadInput
    summaries: list[LevelSummary]
    cancel_requested: Any = None  # one task for the whole load, raced by every poll
    stop: StopReason | None = None  # set once: every later level is skipped
    cancel_reason: str | None = None
    # Levels staged ahead, by the step before theirs (combined_steps in the load's input),
    # and the jobs of their parts submitted there (submit_ahead).
    staged_ahead: dict[int, StagedLevel] = field(default_factory=dict)
    submitted_ahead: dict[int, tuple[JobSnapshot, ...]] = field(default_factory=dict)
    # How Salesforce ran the last level whose jobs completed (predicted_polls).
    pace: JobPace | None = None

    @property
    def submit_load_id(self) -> str | None:
        return self.load.load_id if self.load.submit_ahead else None

    def call(self, activity: str, request: Message) -> Any:
        retry = df.RetryOptions(
            first_retry_interval_in_milliseconds=max(
                1, int(self.load.activity_retry_delay * 1000)),
            max_number_of_attempts=self.load.activity_attempts,
        )
        return self.context.call_activity_with_retry(activity, retry, request.to_json())

    def call_once(self, activity: str, request: Message) -> Any:
        """An activity whose failure only costs time: no retries to wait for."""
        return self.context.call_activity(activity, request.to_json())

    def show(self, index: int, phase: str, jobs: Sequence[JobSnapshot] = ()) -> None:
        self.context.set_custom_status(
            progress.custom_status(self.load, index, phase, jobs, self.summaries))

    @property
    def now(self) -> datetime:
        return self.context.current_utc_datetime


@dataclass
class _Level:
    """What one level's steps found so far; the summary is made of it, also on failure."""

    index: int
    started: datetime
    staged: StagedLevel | None = None
    jobs: list[JobSnapshot] = field(default_factory=list)
    stalled: tuple[str, ...] = ()
    results: LevelResults | None = None
    error: LevelError | None = None
    preparing: list[Any] = field(default_factory=list)  # child levels' preparation tasks


@blueprint.orchestration_trigger(context_name="context")
def bulk_load(context: df.DurableOrchestrationContext) -> Steps:
    """Load the levels top-down; return the summary.

    0. claim the load's records for this execution; a later execution (a restart through
       the Durable API) loads nothing and answers the summary of the one that loaded
    Steps that follow each other run as one activity in a load started with
    `combined_steps` (0 with the first level's 1; a part's create, upload and close in 2;
    4 with the next level's 1; 5's reports with its summary); a level staged ahead that
    way skips its step 1, and one that could not be is staged by it. With `submit_ahead`
    too, the step that stages a level ahead also submits its parts (its 2); a part that
    could not be is submitted by step 2.
    for each level:
      1. stage: write its CSV; children of parents that were not loaded become orphans
      2. submit parts: create, upload and close one ingest job per CSV part; then, while
         they run, prepare the child levels' records (all but their parents' ids)
      3. poll until ended: durable timers until every job ended; abort them at max wait
         or when a cancel arrives. With `predicted_polls`, a level after one whose jobs
         completed is polled when its jobs should end at that level's pace
      4. collect results: the ID map for the next level, failed and unprocessed records
      a level that failed or was cancelled stops the load: its records without results
      are reported with its error, the levels after it are staged as orphans only, and
      reported skipped with the reason.
    5. write the failures and results reports, keep the summary, return it.
    """
    load = LoadInput.from_json(context.get_input())
    started = context.current_utc_datetime
    run = _Load(context, load, [LevelSummary.pending(level, count)
                                for level, count in zip(load.levels, load.records, strict=True)])
    claim = yield from _claim_run(run)
    if not claim.claimed:
        return _refuse_restart(run, claim)
    run.cancel_requested = context.wait_for_external_event(CANCEL_EVENT)
    for index in range(len(load.levels)):
        # A level whose jobs were submitted ahead runs even after a cancel: its polls abort
        # them and its results are read, as for a level cancelled while it ran.
        if run.stop is None and run.cancel_requested.is_completed \
                and index not in run.submitted_ahead:
            run.cancel_reason = progress.cancel_reason(run.cancel_requested.result)
            run.stop = StopReason(StopKind.CANCELLED,
                                  f"load cancelled before this level: {run.cancel_reason}")
        if run.stop is not None:
            yield from _skip_level(run, index)
        else:
            yield from _load_level(run, index)
    if load.combined_steps:
        summary = yield from _write_reports_and_keep_summary(run, started)
        return summary
    reports = yield from _write_reports(run)
    summary = progress.load_summary(load, run.summaries, started, context.current_utc_datetime,
                                    reports, cancel_reason=run.cancel_reason)
    context.set_custom_status(progress.completed_status(load, summary))
    yield from _keep_summary(run, summary)
    return summary


def _claim_run(run: _Load) -> Steps:
    """0. This execution, and no restart of it, loads the staged records."""
    if run.context.instance_id != run.load.load_id:
        raise LoadRestartRefused(
            f"RESTART_REFUSED: instance {run.context.instance_id!r} runs load "
            f"{run.load.load_id!r}: a load cannot be restarted under a new id; post it "
            "again with a new loadId")
    claim = ClaimRunRequest(run.load.prefix, str(run.context.new_uuid()), run.load.load_id)
    if not run.load.combined_steps:
        answer = yield run.call(BULK_LOAD_CLAIM_RUN, claim)
        return ClaimRunResult.from_json(answer)
    # The first level staged in the same activity, once claimed.
    run.show(0, "staging")
    answer = yield run.call(BULK_LOAD_CLAIM_AND_STAGE, ClaimAndStageRequest(
        claim, StageLevelRequest(run.load.prefix, run.load.levels, 0, run.load.upload_limit),
        run.submit_load_id))
    begun = ClaimAndStageResult.from_json(answer)
    if begun.staged is not None:
        run.staged_ahead[0] = begun.staged
    if begun.submitted:
        run.submitted_ahead[0] = begun.submitted
    return begun.claim


def _refuse_restart(run: _Load, claim: ClaimRunResult) -> dict[str, Any]:
    """0. Another execution loaded these records: answer its summary, load nothing."""
    if claim.earlier_summary is None:
        raise LoadRestartRefused(
            f"RESTART_REFUSED: load {run.load.load_id!r} was loaded by an earlier run, which "
            "left no summary; a load cannot be restarted: post it again with a new loadId")
    summary = progress.earlier_summary(claim.earlier_summary)
    run.context.set_custom_status(progress.completed_status(run.load, summary))
    return summary


def _load_level(run: _Load, index: int) -> Steps:
    level = _Level(index, run.now)
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


def _stage(run: _Load, level: _Level) -> Steps:
    """1. The level's CSV, without the children of parents that were not loaded."""
    level.staged = run.staged_ahead.pop(level.index, None)
    if level.staged is not None:  # by the step before
        return
    run.show(level.index, "staging", level.jobs)
    answer = yield run.call(BULK_LOAD_STAGE_LEVEL, StageLevelRequest(
        run.load.prefix, run.load.levels, level.index, run.load.upload_limit))
    level.staged = StagedLevel.from_json(answer)


def _submit_parts(run: _Load, level: _Level) -> Steps:
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


def _poll_until_ended(run: _Load, level: _Level) -> Steps:
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


def _next_poll_at(run: _Load, level: _Level, due: datetime, closed_at: datetime, polls: int,
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


def _children_prepared(run: _Load, level: _Level) -> Steps:
    """The child levels' preparation has ended (as a rule while the jobs ran); a child
    that could not be prepared is staged from its records instead."""
    if not level.preparing:
        return
    try:
        yield run.context.task_all(level.preparing)
    except Exception:  # staging reads the records itself
        return


def _abort(run: _Load, level: _Level, phase: str) -> Steps:
    """Abort the level's running jobs and keep how each ended."""
    run.show(level.index, phase, level.jobs)
    aborted = yield run.call(BULK_LOAD_ABORT_JOBS,
                             JobsRequest(progress.running_job_ids(level.jobs)))
    level.jobs = progress.merge_jobs(level.jobs, JobSnapshots.from_json(aborted).jobs)


def _collect_results(run: _Load, level: _Level) -> Steps:
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


def _skip_level(run: _Load, index: int) -> Steps:
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


def _report_level_failure(run: _Load, level: _Level) -> Steps:
    """Every record of a level that failed before its results were read, with its error."""
    assert level.error is not None
    try:
        answer = yield run.call(BULK_LOAD_REPORT_LEVEL_FAILURE, ReportLevelFailureRequest(
            run.load.prefix, run.load.levels, level.index, level.error))
    except Exception:  # the summary still tells what happened
        return
    level.results = LevelResults.from_json(answer)


def _write_reports(run: _Load) -> Steps:
    """5. Every failed, unprocessed and orphaned record in one CSV, every loaded one in
    another."""
    try:
        answer = yield run.call(BULK_LOAD_WRITE_REPORTS,
                                WriteFailuresRequest(run.load.prefix, len(run.load.levels)))
    except Exception:  # the summary still tells what happened
        return None
    return FailuresReport.from_json(answer)


def _keep_summary(run: _Load, summary: dict[str, Any]) -> Steps:
    """5. Kept beside the records, for the executions a restart would start over them."""
    try:
        yield run.call(BULK_LOAD_KEEP_SUMMARY, KeepSummaryRequest(
            run.load.prefix, run.load.load_id, json.dumps(summary)))
    except Exception:  # a restart then fails instead of answering the summary
        return


def _write_reports_and_keep_summary(run: _Load, started: datetime) -> Steps:
    """5. The reports written and the summary kept in one activity; when that fails after
    its retries, the summary is kept alone, without the failures report's row count."""
    summary = progress.load_summary(run.load, run.summaries, started, run.now, None,
                                    cancel_reason=run.cancel_reason)
    try:
        answer = yield run.call(BULK_LOAD_FINISH, FinishLoadRequest(
            run.load.prefix, len(run.load.levels), run.load.load_id, json.dumps(summary)))
    except Exception:  # the summary still tells what happened
        run.context.set_custom_status(progress.completed_status(run.load, summary))
        yield from _keep_summary(run, summary)
        return summary
    summary = progress.with_failures_report(summary, FailuresReport.from_json(answer))
    run.context.set_custom_status(progress.completed_status(run.load, summary))
    return summary


# Each step of a level, with the code and words its failure is reported under.
_LEVEL_STEPS: tuple[tuple[LevelErrorCode, str, Any], ...] = (
    (LevelErrorCode.STAGING_FAILED, "staging the level's CSV", _stage),
    (LevelErrorCode.SALESFORCE_UNAVAILABLE, "creating, uploading or closing an ingest job",
     _submit_parts),
    (LevelErrorCode.SALESFORCE_UNAVAILABLE, "checking the ingest jobs", _poll_until_ended),
    (LevelErrorCode.RESULTS_UNAVAILABLE, "reading the jobs' results", _collect_results),
)
