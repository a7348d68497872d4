"""Activities of a parent-child bulk load: thin adapters over shared/bulkload/.

Each reads its request message (blob names, level definitions, job ids), calls one function
in shared/bulkload/ and answers a small result message (counts, job states, blob names):
records and CSV stay in Blob Storage and never reach orchestration history. Every activity
is safe to run twice (the Durable backend delivers at least once).
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.durable_functions as df

from shared.bulkload import combined_steps, jobs, levels, reports, staged
from shared.bulkload.claims import claim_load_run, keep_summary
from shared.bulkload.forget_intents import forget_job_intents
from shared.bulkload.job_intents import JobIntents, PartJob
from shared.bulkload.messages import (
    ClaimAndStageRequest,
    ClaimRunRequest,
    ClaimRunResult,
    CollectAndStageRequest,
    CollectResultsRequest,
    CreateJobRequest,
    FinishLoadRequest,
    JobSnapshots,
    JobsRequest,
    KeepSummaryRequest,
    PrepareLevelRequest,
    ReportLevelFailureRequest,
    StageLevelRequest,
    SubmitPartRequest,
    UploadPartRequest,
    WriteFailuresRequest,
)
from shared.bulkload.store import LoadStore
from shared.config import app_settings
from shared.messages import MessageJson as Json
from shared.salesforce import SalesforceClient, process_client
from shared.storage.clients import blob_service, table_service
from shared.storage.tables import table_client

blueprint = df.Blueprint()

BULK_LOAD_CLAIM_RUN = "bulk_load_claim_run"
BULK_LOAD_STAGE_LEVEL = "bulk_load_stage_level"
BULK_LOAD_PREPARE_LEVEL = "bulk_load_prepare_level"
BULK_LOAD_CREATE_JOB = "bulk_load_create_job"
BULK_LOAD_UPLOAD_PART = "bulk_load_upload_part"
BULK_LOAD_SUBMIT_PART = "bulk_load_submit_part"
BULK_LOAD_POLL_JOBS = "bulk_load_poll_jobs"
BULK_LOAD_ABORT_JOBS = "bulk_load_abort_jobs"
BULK_LOAD_COLLECT_RESULTS = "bulk_load_collect_results"
BULK_LOAD_REPORT_LEVEL_FAILURE = "bulk_load_report_level_failure"
BULK_LOAD_WRITE_REPORTS = "bulk_load_write_reports"
BULK_LOAD_KEEP_SUMMARY = "bulk_load_keep_summary"
# Steps that follow each other, as one activity (combined_steps.py).
BULK_LOAD_CLAIM_AND_STAGE = "bulk_load_claim_and_stage"
BULK_LOAD_COLLECT_AND_STAGE = "bulk_load_collect_and_stage"
BULK_LOAD_FINISH = "bulk_load_finish"


def _client() -> SalesforceClient:
    return process_client(app_settings())


def _job_intents() -> JobIntents:
    settings = app_settings()
    return JobIntents(table_client(table_service(settings.storage),
                                   settings.bulk_load.jobs_table))


def _store(prefix: str) -> LoadStore:
    settings = app_settings()
    return LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                              prefix)


@blueprint.function_name(BULK_LOAD_CLAIM_RUN)
@blueprint.activity_trigger(input_name="request")
def bulk_load_claim_run(request: Json) -> Json:
    claim = ClaimRunRequest.from_json(request)
    run = claim_load_run(_store(claim.prefix), claim.load_id, claim.run_token)
    return ClaimRunResult(run.claimed, run.earlier_summary).to_json()


@blueprint.function_name(BULK_LOAD_STAGE_LEVEL)
@blueprint.activity_trigger(input_name="request")
def bulk_load_stage_level(request: Json) -> Json:
    stage = StageLevelRequest.from_json(request)
    return levels.stage_level(
        _store(stage.prefix), stage.levels, stage.level, stage.upload_limit,
        stage.skip.as_error() if stage.skip is not None else None,
    ).to_json()


@blueprint.function_name(BULK_LOAD_PREPARE_LEVEL)
@blueprint.activity_trigger(input_name="request")
def bulk_load_prepare_level(request: Json) -> None:
    prepare = PrepareLevelRequest.from_json(request)
    staged.prepare_level(_store(prepare.prefix), prepare.level, prepare.body_digest)


@blueprint.function_name(BULK_LOAD_CREATE_JOB)
@blueprint.activity_trigger(input_name="request")
def bulk_load_create_job(request: Json) -> Json:
    create = CreateJobRequest.from_json(request)
    return jobs.create_level_job(
        _client(), _job_intents(), PartJob(create.load_id, create.level_index, create.part),
        create.level, datetime.now(UTC),
    ).to_json()


@blueprint.function_name(BULK_LOAD_UPLOAD_PART)
@blueprint.activity_trigger(input_name="request")
def bulk_load_upload_part(request: Json) -> Json:
    upload = UploadPartRequest.from_json(request)
    return jobs.upload_and_close_job(
        _client(), _store(upload.prefix), upload.job_id, upload.blob
    ).to_json()


@blueprint.function_name(BULK_LOAD_SUBMIT_PART)
@blueprint.activity_trigger(input_name="request")
def bulk_load_submit_part(request: Json) -> Json:
    submit = SubmitPartRequest.from_json(request)
    return jobs.submit_part_job(
        _client(), _job_intents(), _store(submit.prefix),
        PartJob(submit.load_id, submit.level_index, submit.part), submit.level, submit.blob,
        datetime.now(UTC),
    ).to_json()


@blueprint.function_name(BULK_LOAD_POLL_JOBS)
@blueprint.activity_trigger(input_name="request")
def bulk_load_poll_jobs(request: Json) -> Json:
    job_ids = JobsRequest.from_json(request).job_ids
    return JobSnapshots(tuple(jobs.poll_jobs(_client(), job_ids))).to_json()


@blueprint.function_name(BULK_LOAD_ABORT_JOBS)
@blueprint.activity_trigger(input_name="request")
def bulk_load_abort_jobs(request: Json) -> Json:
    job_ids = JobsRequest.from_json(request).job_ids
    return JobSnapshots(tuple(jobs.abort_jobs(_client(), job_ids))).to_json()


@blueprint.function_name(BULK_LOAD_COLLECT_RESULTS)
@blueprint.activity_trigger(input_name="request")
def bulk_load_collect_results(request: Json) -> Json:
    collect = CollectResultsRequest.from_json(request)
    return levels.collect_level_results(
        _store(collect.prefix), _client(), collect.levels, collect.level, collect.jobs,
        collect.columns,
    ).to_json()


@blueprint.function_name(BULK_LOAD_REPORT_LEVEL_FAILURE)
@blueprint.activity_trigger(input_name="request")
def bulk_load_report_level_failure(request: Json) -> Json:
    report = ReportLevelFailureRequest.from_json(request)
    return reports.report_level_failure(
        _store(report.prefix), report.levels, report.level, report.error).to_json()


@blueprint.function_name(BULK_LOAD_WRITE_REPORTS)
@blueprint.activity_trigger(input_name="request")
def bulk_load_write_reports(request: Json) -> Json:
    write = WriteFailuresRequest.from_json(request)
    return reports.write_reports(_store(write.prefix), write.level_count).to_json()


@blueprint.function_name(BULK_LOAD_KEEP_SUMMARY)
@blueprint.activity_trigger(input_name="request")
def bulk_load_keep_summary(request: Json) -> None:
    keep = KeepSummaryRequest.from_json(request)
    keep_summary(_store(keep.prefix), keep.load_id, keep.summary)
    forget_job_intents(_job_intents(), keep.load_id)


@blueprint.function_name(BULK_LOAD_CLAIM_AND_STAGE)
@blueprint.activity_trigger(input_name="request")
def bulk_load_claim_and_stage(request: Json) -> Json:
    begin = ClaimAndStageRequest.from_json(request)
    submitter = (combined_steps.PartSubmitter(_client(), _job_intents(), begin.submit_load_id)
                 if begin.submit_load_id is not None else None)
    return combined_steps.claim_and_stage_first(
        _store(begin.claim.prefix), begin.claim.load_id, begin.claim.run_token, begin.stage,
        submitter,
    ).to_json()


@blueprint.function_name(BULK_LOAD_COLLECT_AND_STAGE)
@blueprint.activity_trigger(input_name="request")
def bulk_load_collect_and_stage(request: Json) -> Json:
    step = CollectAndStageRequest.from_json(request)
    collect = step.collect
    client = _client()
    submitter = (combined_steps.PartSubmitter(client, _job_intents(), step.submit_load_id)
                 if step.submit_load_id is not None else None)
    return combined_steps.collect_and_stage_next(
        _store(collect.prefix), client, collect.levels, collect.level, collect.jobs,
        collect.columns, step.stage_next, submitter,
    ).to_json()


@blueprint.function_name(BULK_LOAD_FINISH)
@blueprint.activity_trigger(input_name="request")
def bulk_load_finish(request: Json) -> Json:
    finish = FinishLoadRequest.from_json(request)
    report = combined_steps.write_reports_and_keep_summary(
        _store(finish.prefix), finish.level_count, finish.load_id, finish.summary,
    )
    forget_job_intents(_job_intents(), finish.load_id)
    return report.to_json()
