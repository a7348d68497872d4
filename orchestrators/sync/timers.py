"""One timer per sync job (NCRONTAB from its schedule setting), and the tick they and
POST /api/sync/{job}/run share: start, skip or terminate a stuck run under the job's lock."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrators.sync.orchestration import blueprint
from shared.config import AppSettings, app_settings
from shared.sync import run_plan
from shared.sync.catalog import JOB_DEFINITIONS
from shared.sync.job import JobDefinition, SyncJob
from shared.sync.lock import TickDecision
from shared.sync.messages import RunInput
from shared.sync.starter import run_tick
from shared.sync.state import sync_state


async def tick_now(job: SyncJob, settings: AppSettings, client: Any) -> TickDecision:
    """A tick of `job`: start, skip or terminate a stuck run, under the job's lock."""
    def run_input(run_id: str, started_at: datetime) -> RunInput:
        return run_plan.new_run_input(job, settings.sync, run_id, started_at)

    # Made on a thread: the first use in a process creates the state's tables.
    state = await asyncio.to_thread(sync_state, settings)
    return await run_tick(job, client, state, run_input)


def _register_timer(definition: JobDefinition) -> None:
    async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
        settings = app_settings()
        await tick_now(definition.build(settings), settings, client)

    tick.__name__ = tick.__qualname__ = definition.timer_function
    blueprint.function_name(name=definition.timer_function)(
        blueprint.timer_trigger(
            schedule=f"%{definition.schedule_setting}%", arg_name="timer", run_on_startup=False
        )(blueprint.durable_client_input(client_name="client")(tick))
    )


for _definition in JOB_DEFINITIONS:
    _register_timer(_definition)
