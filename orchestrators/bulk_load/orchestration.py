"""The bulk_load orchestration: a parent-child load, level by level (see `bulk_load`).

It only decides: every read and write of records, CSV and jobs is an activity
(activities/bulk_load.py), and what it keeps in history are blob names, counts and job
states. No clock but `context.current_utc_datetime`. Here: the claim (0), the level loop
and the reports and summary (5); a level's steps (1-4) are level_steps.py's, the state
they share run_state.py's.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from activities.bulk_load import (
    BULK_LOAD_CLAIM_AND_STAGE,
    BULK_LOAD_CLAIM_RUN,
    BULK_LOAD_FINISH,
    BULK_LOAD_KEEP_SUMMARY,
    BULK_LOAD_WRITE_REPORTS,
)
from orchestrators.bulk_load.level_steps import load_level, skip_level
from orchestrators.bulk_load.run_state import LoadRun, Steps
from shared.bulkload import progress
from shared.bulkload.messages import (
    ClaimAndStageRequest,
    ClaimAndStageResult,
    ClaimRunRequest,
    ClaimRunResult,
    FailuresReport,
    FinishLoadRequest,
    KeepSummaryRequest,
    LoadInput,
    StageLevelRequest,
    StopKind,
    StopReason,
    WriteFailuresRequest,
)
from shared.bulkload.progress import LevelSummary

blueprint = df.Blueprint()

ORCHESTRATOR = "bulk_load"
CANCEL_EVENT = "cancel"


class LoadRestartRefused(Exception):
    """A restart through the Durable API would send the load's records a second time."""


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
    run = LoadRun(context, load, [LevelSummary.pending(level, count)
                                  for level, count in zip(load.levels, load.records, strict=True)])
    claim = yield from _claim_run(run)
    if not claim.claimed:
        return _refuse_restart(run, claim)
    run.cancel_requested = context.wait_for_external_event(CANCEL_EVENT)
    yield from _load_levels(run)
    if load.combined_steps:
        summary = yield from _write_reports_and_keep_summary(run, started)
        return summary
    reports = yield from _write_reports(run)
    summary = progress.load_summary(load, run.summaries, started, context.current_utc_datetime,
                                    reports, cancel_reason=run.cancel_reason)
    context.set_custom_status(progress.completed_status(load, summary))
    yield from _keep_summary(run, summary)
    return summary


def _claim_run(run: LoadRun) -> Steps:
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


def _load_levels(run: LoadRun) -> Steps:
    """1-4 for each level (level_steps.py); once the load stopped, the levels left are
    skipped."""
    for index in range(len(run.load.levels)):
        # A level whose jobs were submitted ahead runs even after a cancel: its polls abort
        # them and its results are read, as for a level cancelled while it ran.
        if run.stop is None and run.cancel_requested.is_completed \
                and index not in run.submitted_ahead:
            run.cancel_reason = progress.cancel_reason(run.cancel_requested.result)
            run.stop = StopReason(StopKind.CANCELLED,
                                  f"load cancelled before this level: {run.cancel_reason}")
        if run.stop is not None:
            yield from skip_level(run, index)
        else:
            yield from load_level(run, index)


def _refuse_restart(run: LoadRun, claim: ClaimRunResult) -> dict[str, Any]:
    """0. Another execution loaded these records: answer its summary, load nothing."""
    if claim.earlier_summary is None:
        raise LoadRestartRefused(
            f"RESTART_REFUSED: load {run.load.load_id!r} was loaded by an earlier run, which "
            "left no summary; a load cannot be restarted: post it again with a new loadId")
    summary = progress.earlier_summary(claim.earlier_summary)
    run.context.set_custom_status(progress.completed_status(run.load, summary))
    return summary


def _write_reports(run: LoadRun) -> Steps:
    """5. Every failed, unprocessed and orphaned record in one CSV, every loaded one in
    another."""
    try:
        answer = yield run.call(BULK_LOAD_WRITE_REPORTS,
                                WriteFailuresRequest(run.load.prefix, len(run.load.levels)))
    except Exception:  # the summary still tells what happened
        return None
    return FailuresReport.from_json(answer)


def _keep_summary(run: LoadRun, summary: dict[str, Any]) -> Steps:
    """5. Kept beside the records, for the executions a restart would start over them."""
    try:
        yield run.call(BULK_LOAD_KEEP_SUMMARY, KeepSummaryRequest(
            run.load.prefix, run.load.load_id, json.dumps(summary)))
    except Exception:  # a restart then fails instead of answering the summary
        return


def _write_reports_and_keep_summary(run: LoadRun, started: datetime) -> Steps:
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
