"""Scheduled change sync: one timer per job, the singleton run orchestration, status.

    timer (NCRONTAB from the job's schedule setting)
      -> tick: decide from the instance `sync-<job>` and the lease (shared/sync/lock.py),
         start / skip / terminate a stuck run
      -> sync_run orchestration: begin (bound, claim) -> page, page, ... -> end
         (continue_as_new every N pages; a page that failed as a whole is retried with
         durable-timer backoff, then the run fails with the watermark untouched)
    POST /api/sync/{job}/run: a tick on demand, under the same lock (202 started, 409 not).
    GET /api/sync/{job}: lock state, progress, watermark, lag, last runs, tick counters.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrators.http import problem_response, request_path
from shared.config import AppSettings, app_settings
from shared.durable import input_object
from shared.problems import problem
from shared.sync import run_plan
from shared.sync.job import SyncJob
from shared.sync.jobs import JOB_SCHEDULES, sync_jobs, sync_state
from shared.sync.lock import TickAction, TickDecision, decide_tick
from shared.sync.starter import instance_snapshot, run_tick
from shared.sync.state import utc_now
from shared.sync.status import job_status, unknown_job_problem

blueprint = df.Blueprint()

# Why a run on demand was refused, for clients that branch on it.
REFUSED_RUN_CODES = {
    TickAction.SKIP_BUSY: "RUN_IN_PROGRESS",
    TickAction.SKIP_HELD: "LOCK_HELD",
    TickAction.TERMINATE_STUCK: "RUN_STUCK",
    TickAction.SKIP_DISABLED: "JOB_DISABLED",
}


# -- timers: one per job --------------------------------------------------------------


async def _tick(job: SyncJob, settings: AppSettings, client: Any) -> TickDecision:
    def run_input(run_id: str, started_at: datetime) -> dict[str, Any]:
        return run_plan.new_run_input(
            job.name, run_id, started_at,
            page_attempts=settings.sync.page_attempts,
            page_retry_delay=settings.sync.page_retry_delay,
            pages_per_generation=job.pages_per_generation,
        )

    return await run_tick(job, client, sync_state(settings), run_input)


def _register_timer(job_name: str, schedule_setting: str) -> None:
    async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
        settings = app_settings()
        await _tick(sync_jobs(settings)[job_name], settings, client)

    function_name = f"sync_tick_{job_name.replace('-', '_')}"
    tick.__name__ = tick.__qualname__ = function_name
    blueprint.function_name(name=function_name)(
        blueprint.timer_trigger(
            schedule=f"%{schedule_setting}%", arg_name="timer", run_on_startup=False
        )(blueprint.durable_client_input(client_name="client")(tick))
    )


for _name, _setting in JOB_SCHEDULES.items():
    _register_timer(_name, _setting)


# -- the run ----------------------------------------------------------------------------


class SyncRunFailed(Exception):
    """The run ended in failure; the message names the job and the cause."""


@blueprint.orchestration_trigger(context_name="context")
def sync_run(context: df.DurableOrchestrationContext):
    run = input_object(context.get_input(), "the sync run's input")
    request = {"job": run["job"], "run_id": run["run_id"], "started_at": run["started_at"]}

    if run["upper_bound"] is None:
        context.set_custom_status(run_plan.custom_status(run, "beginning"))
        try:
            begun = yield context.call_activity("sync_begin_run", request)
        except Exception as error:  # an activity that raised: the run must still be recorded
            begun = {"ok": False, "error": f"sync job {run['job']!r}: begin failed: {error}"}
        if not begun["ok"]:
            yield from _end(context, run, "failed", begun["error"])
            raise SyncRunFailed(begun["error"])
        run = {**run, "upper_bound": begun["upper_bound"]}

    pages_this_generation = 0
    failed_attempts = 0
    while True:
        context.set_custom_status(run_plan.custom_status(run, "syncing"))
        try:
            page = yield context.call_activity(
                "sync_page", {**request, "upper_bound": run["upper_bound"]}
            )
        except Exception as error:
            page = {"ok": False, "retryable": False,
                    "error": f"sync job {run['job']!r}: page failed: {error}"}
        if not page["ok"]:
            failed_attempts += 1
            delay = run_plan.retry_delay(run, failed_attempts) if page["retryable"] else None
            if delay is not None:
                context.set_custom_status(run_plan.custom_status(run, "waiting to retry"))
                yield context.create_timer(context.current_utc_datetime + delay)
                continue
            yield from _end(context, run, "failed", page["error"])
            raise SyncRunFailed(page["error"])
        failed_attempts = 0
        run = run_plan.add_page(run, page)
        if page["done"]:
            yield from _end(context, run, "succeeded", None)
            return run_plan.totals(run)
        pages_this_generation += 1
        if pages_this_generation >= run["pages_per_generation"]:
            context.continue_as_new(run_plan.next_generation(run))
            return None


def _end(context: df.DurableOrchestrationContext, run: dict, outcome: str, error: str | None):
    context.set_custom_status(run_plan.custom_status(run, outcome))
    yield context.call_activity("sync_end_run", {
        "job": run["job"], "run_id": run["run_id"], "started_at": run["started_at"],
        "outcome": outcome, "totals": run_plan.totals(run), "error": error,
    })


# -- HTTP: run now, status -------------------------------------------------------------


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
async def sync_run_now(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Start a run now, under the same lock as the timer (busy, min interval, stuck)."""
    settings = app_settings()
    job = _requested_job(req, settings)
    if isinstance(job, func.HttpResponse):
        return job
    try:
        decision = await _tick(job, settings, client)
    except Exception as error:  # the durable backend or the state tables failed, not the caller
        logging.exception("sync job %s: run on demand failed", job.name)
        return problem_response(problem(
            503, "BACKEND_UNAVAILABLE", "Run could not be started",
            f"starting run of {job.name!r} failed ({type(error).__name__}); the lock was "
            "released, try again shortly", request_path(req)), headers={"Retry-After": "30"})
    if decision.action is TickAction.START:
        return func.HttpResponse(
            json.dumps({"job": job.name, "run_id": decision.run_id,
                        "instance_id": job.instance_id, "status": f"/api/sync/{job.name}"}),
            status_code=202, mimetype="application/json",
        )
    return problem_response(problem(
        409, REFUSED_RUN_CODES[decision.action], "Run not started", decision.reason,
        request_path(req)))


@blueprint.route(route="sync/{job}", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
async def sync_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    settings = app_settings()
    job = _requested_job(req, settings)
    if isinstance(job, func.HttpResponse):
        return job
    state = sync_state(settings)
    status = await client.get_status(job.instance_id, show_input=True)
    instance = instance_snapshot(status)
    now = utc_now()
    decision = decide_tick(
        now, enabled=job.enabled, instance=instance, lease=state.read_lease(job.name),
        max_run_time=job.max_run_time, min_interval=job.min_interval,
    )
    body = job_status(
        job, state, instance, decision,
        custom_status=status.custom_status if status else None,
        schedule=os.environ.get(job.schedule_setting), now=now,
    )
    return func.HttpResponse(json.dumps(body, default=_json_value), mimetype="application/json")


def _json_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
