"""Activities of the scheduled change sync: thin adapters over shared/sync/pages.py.

Each takes a small dict (job name, run id, times, the encoded upper bound) and returns a
small dict (counts, a cursor position, or an error with its code): rows never leave the
activity, so they never reach orchestration history. A `SyncRunError` is returned, not
raised, so that the orchestrator can tell a page worth retrying from a run that must stop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.durable_functions as df

from shared.config import app_settings
from shared.sync.job import SyncJob
from shared.sync.jobs import sink_for, sync_jobs, sync_state
from shared.sync.pages import SyncRunError, begin_run, end_run, sync_next_page
from shared.sync.state import SyncState

blueprint = df.Blueprint()


def _job_and_state(name: str) -> tuple[SyncJob, SyncState]:
    settings = app_settings()
    return sync_jobs(settings)[name], sync_state(settings)


@blueprint.activity_trigger(input_name="request")
def sync_begin_run(request: dict[str, Any]) -> dict[str, Any]:
    job, state = _job_and_state(request["job"])
    try:
        return begin_run(
            job, state, request["run_id"], datetime.fromisoformat(request["started_at"])
        )
    except SyncRunError as error:
        return error.as_result()


@blueprint.activity_trigger(input_name="request")
def sync_page(request: dict[str, Any]) -> dict[str, Any]:
    job, state = _job_and_state(request["job"])
    try:
        sink = sink_for(job, app_settings())
        return sync_next_page(
            job, state, sink, request["run_id"], request["upper_bound"]
        ).as_result()
    except SyncRunError as error:
        return error.as_result()


@blueprint.activity_trigger(input_name="request")
def sync_end_run(request: dict[str, Any]) -> dict[str, Any]:
    job, state = _job_and_state(request["job"])
    end_run(
        job, state, request["run_id"], datetime.fromisoformat(request["started_at"]),
        request["outcome"], request.get("totals") or {}, request.get("error"),
    )
    return {"ok": True}
