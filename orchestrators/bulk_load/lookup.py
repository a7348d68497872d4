"""Finding the bulk load an endpoint was asked about, among the task hub's instances."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from orchestrators.bulk_load.orchestration import ORCHESTRATOR
from orchestrators.http import problem_response
from shared.bulkload.request import LOAD_ID_PATTERN
from shared.bulkload.views import LoadSnapshot, load_view
from shared.durable import instance_id_of, read_status, runtime_state_of
from shared.problems import problem


def is_bulk_load(status: DurableOrchestrationStatus) -> bool:
    # Load ids share the task hub with other instances (the sync jobs' `sync-<job>`): an
    # instance of another orchestration is not a load, whatever its id.
    return status.name == ORCHESTRATOR


async def requested_load(
    client: df.DurableOrchestrationClient, load_id: str, instance: str, show_input: bool
) -> DurableOrchestrationStatus | func.HttpResponse:
    """The status of bulk load `load_id`, or the 404 problem answer when there is none."""
    status = (await read_status(client, load_id, show_input=show_input)
              if LOAD_ID_PATTERN.fullmatch(load_id) else None)
    if not status or status.runtime_status is None or not is_bulk_load(status):
        return problem_response(problem(404, "UNKNOWN_LOAD", "Unknown bulk load",
                                         f"no bulk load {load_id!r}", instance))
    return status


def load_view_of(status: DurableOrchestrationStatus) -> dict[str, Any]:
    """The load as the loads API shows it (`status` read with its input)."""
    return load_view(LoadSnapshot(
        load_id=instance_id_of(status), runtime_status=runtime_state_of(status),
        created_at=status.created_time, updated_at=status.last_updated_time,
        load_input=status.input_, custom_status=status.custom_status, output=status.output))
