"""POST /api/sync/{job}/run (a tick on demand: 202 started, 409 not) and
GET /api/sync/{job} (lock state, progress, watermark, lag, last runs, tick counters)."""

from __future__ import annotations

import os

import azure.durable_functions as df
import azure.functions as func

from orchestrators.http import answers_failures, problem_response, request_path
from orchestrators.sync.orchestration import blueprint
from orchestrators.sync.timers import tick_now
from shared.answer_json import answer_text
from shared.config import AppSettings, app_settings
from shared.durable import read_status
from shared.problems import problem
from shared.sync.catalog import sync_jobs
from shared.sync.job import SyncJob
from shared.sync.lock import TickAction, decide_tick
from shared.sync.starter import instance_snapshot
from shared.sync.state import sync_state, utc_now
from shared.sync.status import job_status, unknown_job_problem

# Why a run on demand was refused, for clients that branch on it.
REFUSED_RUN_CODES = {
    TickAction.SKIP_BUSY: "RUN_IN_PROGRESS",
    TickAction.SKIP_HELD: "LOCK_HELD",
    TickAction.TERMINATE_STUCK: "RUN_STUCK",
    TickAction.SKIP_DISABLED: "JOB_DISABLED",
}


def _requested_job(req: func.HttpRequest, settings: AppSettings) -> SyncJob | func.HttpResponse:
    """The job the route names, or the 404 problem answer listing the configured jobs."""
    jobs = sync_jobs(settings)
    name = req.route_params.get("job", "")
    job = jobs.get(name)
    if job is None:
        return problem_response(unknown_job_problem(name, sorted(jobs), request_path(req)))
    return job


@blueprint.route(route="sync/{job}/run", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def sync_run_now(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Start a run now, under the same lock as the timer (busy, min interval, stuck)."""
    settings = app_settings()
    job = _requested_job(req, settings)
    if isinstance(job, func.HttpResponse):
        return job
    # A failure is answered by @answers_failures, as every endpoint's: 503 naming the
    # dependency (storage, the durable backend) with Retry-After, else 500.
    decision = await tick_now(job, settings, client)
    if decision.action is TickAction.START:
        return func.HttpResponse(
            answer_text({"job": job.name, "runId": decision.run_id,
                         "instanceId": job.instance_id, "status": f"/api/sync/{job.name}"}),
            status_code=202, mimetype="application/json",
        )
    return problem_response(problem(
        409, REFUSED_RUN_CODES[decision.action], "Run not started", decision.reason,
        request_path(req)))


@blueprint.route(route="sync/{job}", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def sync_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    settings = app_settings()
    job = _requested_job(req, settings)
    if isinstance(job, func.HttpResponse):
        return job
    state = sync_state(settings)
    status = await read_status(client, job.instance_id, show_input=True)
    instance = instance_snapshot(status)
    now = utc_now()
    decision = decide_tick(
        now, enabled=job.enabled, instance=instance, lease=state.lease.read(job.name),
        max_run_time=job.max_run_time, min_interval=job.min_interval,
    )
    body = job_status(
        job, state, instance, decision,
        custom_status=status.custom_status if status else None,
        schedule=os.environ.get(job.schedule_setting), now=now,
    )
    return func.HttpResponse(answer_text(body), mimetype="application/json")
