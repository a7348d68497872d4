"""Activities of the scheduled change sync: thin adapters over shared/sync/ (run.py,
pages.py, partitions.py, backlog_staging.py, backlog_submission.py, backlog_finish.py).

Each reads its request message (job name, run id, times, the upper bound as text) and
answers a small result message (counts, a cursor position, or the failure with its code):
rows never leave the activity, so they never reach orchestration history. A
`SyncRunError` is answered as a `StepFailure`, not raised, so that the orchestrator can
tell a page worth retrying from a run that must stop.
"""

from __future__ import annotations

from dataclasses import replace

import azure.durable_functions as df

from shared.bulkload.jobs import poll_jobs
from shared.bulkload.store import LoadStore
from shared.config import app_settings
from shared.messages import MessageJson
from shared.salesforce import SalesforceError, process_client
from shared.sql.keyset import KeyPartition
from shared.storage.clients import process_blob_service
from shared.sync.backlog import backlog_store
from shared.sync.backlog_finish import finish_backlog
from shared.sync.backlog_jobs import job_records, settle_earlier_jobs
from shared.sync.backlog_staging import stage_backlog
from shared.sync.backlog_submission import submit_backlog_part
from shared.sync.catalog import sink_for, sync_jobs
from shared.sync.errors import SyncRunError
from shared.sync.job import SalesforceSinkSpec, SyncJob
from shared.sync.messages import (
    BacklogFinishRequest,
    BacklogJobs,
    BacklogJobsRequest,
    BacklogPartRequest,
    BacklogRequest,
    BacklogStaged,
    BeginRunRequest,
    EarlierJobsRunning,
    EndPartitionedRunRequest,
    EndRunRequest,
    JoinPartitionsRequest,
    PagesRequest,
    PagesResult,
    RunBegun,
)
from shared.sync.pages import PageBudget, sync_pages
from shared.sync.partitions import join_partitions
from shared.sync.run import begin_run, end_partitioned_run, end_run
from shared.sync.state import SyncState, sync_state

blueprint = df.Blueprint()

SYNC_BEGIN_RUN = "sync_begin_run"
SYNC_PAGES = "sync_pages"
SYNC_JOIN_PARTITIONS = "sync_join_partitions"
SYNC_END_RUN = "sync_end_run"
SYNC_END_PARTITIONED_RUN = "sync_end_partitioned_run"
SYNC_STAGE_BACKLOG = "sync_stage_backlog"
SYNC_SUBMIT_BACKLOG_PART = "sync_submit_backlog_part"
SYNC_POLL_BACKLOG = "sync_poll_backlog"
SYNC_FINISH_BACKLOG = "sync_finish_backlog"
SYNC_SETTLE_EARLIER_JOBS = "sync_settle_earlier_jobs"


def _job_and_state(name: str) -> tuple[SyncJob, SyncState]:
    settings = app_settings()
    return sync_jobs(settings)[name], sync_state(settings)


def _store(job: str, run_id: str) -> LoadStore:
    settings = app_settings()
    return backlog_store(process_blob_service(settings.storage),
                         settings.sync.backlog_container, job, run_id)


@blueprint.function_name(SYNC_BEGIN_RUN)
@blueprint.activity_trigger(input_name="request")
def sync_begin_run(request: MessageJson) -> MessageJson:
    begin = BeginRunRequest.from_json(request)
    job, state = _job_and_state(begin.job)
    try:
        begun = begin_run(job, state, begin.run_id, begin.started_at, begin.partitions)
    except SyncRunError as error:
        return RunBegun(failure=error.as_failure()).to_json()
    # Asked here, not by an activity of its own: most runs find no job recorded.
    return replace(begun, earlier_jobs=_earlier_jobs_running(job, ())).to_json()


@blueprint.function_name(SYNC_PAGES)
@blueprint.activity_trigger(input_name="request")
def sync_pages_activity(request: MessageJson) -> MessageJson:
    pages = PagesRequest.from_json(request)
    job, state = _job_and_state(pages.job)
    try:
        sink = sink_for(job, app_settings())
        partition = (None if pages.partition is None
                     else KeyPartition(pages.partition, pages.partitions))
        return sync_pages(job, state, sink, pages.run_id, pages.upper_bound,
                          PageBudget(pages.budget_seconds, pages.max_pages),
                          partition=partition).to_json()
    except SyncRunError as error:
        return PagesResult(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_JOIN_PARTITIONS)
@blueprint.activity_trigger(input_name="request")
def sync_join_partitions(request: MessageJson) -> MessageJson:
    join = JoinPartitionsRequest.from_json(request)
    job, state = _job_and_state(join.job)
    try:
        return join_partitions(job, state, join.run_id, join.partitions).to_json()
    except SyncRunError as error:
        return PagesResult(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_END_RUN)
@blueprint.activity_trigger(input_name="request")
def sync_end_run(request: MessageJson) -> None:
    end = EndRunRequest.from_json(request)
    job, state = _job_and_state(end.job)
    end_run(job, state, end.run_id, end.started_at, end.outcome, end.totals, end.error)


@blueprint.function_name(SYNC_END_PARTITIONED_RUN)
@blueprint.activity_trigger(input_name="request")
def sync_end_partitioned_run(request: MessageJson) -> MessageJson:
    end = EndPartitionedRunRequest.from_json(request)
    job, state = _job_and_state(end.job)
    try:
        return end_partitioned_run(job, state, end.run_id, end.started_at,
                                   end.partitions).to_json()
    except SyncRunError as error:
        return PagesResult(failure=error.as_failure()).to_json()


# -- backlog mode: Bulk API 2.0 upsert jobs instead of pages ------------------------------


@blueprint.function_name(SYNC_STAGE_BACKLOG)
@blueprint.activity_trigger(input_name="request")
def sync_stage_backlog(request: MessageJson) -> MessageJson:
    backlog = BacklogRequest.from_json(request)
    job, state = _job_and_state(backlog.job)
    settings = app_settings()
    try:
        return stage_backlog(job, state, _store(job.name, backlog.run_id),
                             process_client(settings.salesforce), backlog.run_id,
                             backlog.upper_bound, settings.sync.backlog_part_rows).to_json()
    except SyncRunError as error:
        return BacklogStaged(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_SUBMIT_BACKLOG_PART)
@blueprint.activity_trigger(input_name="request")
def sync_submit_backlog_part(request: MessageJson) -> MessageJson:
    part = BacklogPartRequest.from_json(request)
    job, _state = _job_and_state(part.job)
    client = process_client(app_settings().salesforce)
    try:
        snapshot = submit_backlog_part(job, client, _store(job.name, part.run_id),
                                       part.run_id, part.blob)
    except SyncRunError as error:
        return BacklogJobs(failure=error.as_failure()).to_json()
    return BacklogJobs((snapshot,)).to_json()


@blueprint.function_name(SYNC_POLL_BACKLOG)
@blueprint.activity_trigger(input_name="request")
def sync_poll_backlog(request: MessageJson) -> MessageJson:
    jobs = BacklogJobsRequest.from_json(request)
    try:
        snapshots = poll_jobs(process_client(app_settings().salesforce), jobs.job_ids)
    except SalesforceError as error:
        return BacklogJobs(failure=SyncRunError(
            jobs.job, error.error_code, f"Salesforce Bulk API: {error.message}",
            retryable=True).as_failure()).to_json()
    return BacklogJobs(tuple(snapshots)).to_json()


@blueprint.function_name(SYNC_FINISH_BACKLOG)
@blueprint.activity_trigger(input_name="request")
def sync_finish_backlog(request: MessageJson) -> MessageJson:
    finish = BacklogFinishRequest.from_json(request)
    job, state = _job_and_state(finish.job)
    client = process_client(app_settings().salesforce)
    try:
        return finish_backlog(job, state, _store(job.name, finish.run_id), client,
                              finish.run_id, finish.staged, finish.jobs).to_json()
    except SyncRunError as error:
        return PagesResult(failure=error.as_failure()).to_json()


@blueprint.function_name(SYNC_SETTLE_EARLIER_JOBS)
@blueprint.activity_trigger(input_name="request")
def sync_settle_earlier_jobs(request: MessageJson) -> MessageJson:
    own = BacklogJobsRequest.from_json(request)
    return _earlier_jobs_running(sync_jobs(app_settings())[own.job], own.job_ids).to_json()


def _earlier_jobs_running(job: SyncJob, own: tuple[str, ...]) -> EarlierJobsRunning:
    if not isinstance(job.sink, SalesforceSinkSpec):  # no backlog, no jobs
        return EarlierJobsRunning()
    settings = app_settings()
    records = job_records(process_blob_service(settings.storage), settings.sync.backlog_container,
                          job.name)
    try:
        running = settle_earlier_jobs(records, lambda: process_client(settings.salesforce),
                                      set(own))
    except SalesforceError as error:
        return EarlierJobsRunning(failure=SyncRunError(
            job.name, error.error_code, f"Salesforce Bulk API: {error.message}",
            retryable=True).as_failure())
    return EarlierJobsRunning(running)
