"""Activities of the scheduled change sync: thin adapters over shared/sync/ (run.py, pages.py).

Each reads its request message (job name, run id, times, the upper bound as text) and
answers a small result message (counts, a cursor position, or the failure with its code):
rows never leave the activity, so they never reach orchestration history. A
`SyncRunError` is answered as a `StepFailure`, not raised, so that the orchestrator can
tell a page worth retrying from a run that must stop.
"""

from __future__ import annotations

import azure.durable_functions as df

from shared.config import app_settings
from shared.messages import MessageJson
from shared.sync.catalog import sink_for, sync_jobs
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import (
    BeginRunRequest,
    EndRunRequest,
    PagesRequest,
    PagesResult,
    RunBegun,
)
from shared.sync.pages import PageBudget, sync_pages
from shared.sync.run import begin_run, end_run
from shared.sync.state import SyncState, sync_state

blueprint = df.Blueprint()

SYNC_BEGIN_RUN = "sync_begin_run"
SYNC_PAGES = "sync_pages"
SYNC_END_RUN = "sync_end_run"


def _job_and_state(name: str) -> tuple[SyncJob, SyncState]:
    settings = app_settings()
    return sync_jobs(settings)[name], sync_state(settings)


@blueprint.function_name(SYNC_BEGIN_RUN)
@blueprint.activity_trigger(input_name="request")
def sync_begin_run(request: MessageJson) -> MessageJson:
    begin = BeginRunRequest.from_json(request)
    job, state = _job_and_state(begin.job)
    try:
        return begin_run(job, state, begin.run_id, begin.started_at).to_json()
    except SyncRunError as error:
        return RunBegun(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_PAGES)
@blueprint.activity_trigger(input_name="request")
def sync_pages_activity(request: MessageJson) -> MessageJson:
    pages = PagesRequest.from_json(request)
    job, state = _job_and_state(pages.job)
    try:
        sink = sink_for(job, app_settings())
        return sync_pages(job, state, sink, pages.run_id, pages.upper_bound,
                          PageBudget(pages.budget_seconds, pages.max_pages)).to_json()
    except SyncRunError as error:
        return PagesResult(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_END_RUN)
@blueprint.activity_trigger(input_name="request")
def sync_end_run(request: MessageJson) -> None:
    end = EndRunRequest.from_json(request)
    job, state = _job_and_state(end.job)
    end_run(job, state, end.run_id, end.started_at, end.outcome, end.totals, end.error)
