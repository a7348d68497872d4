"""Whether an active row's instance still runs: its row against its orchestration.

A row says STAGING, EXECUTABLE or EXECUTING until the finish step writes the final one. An
orchestration that failed (an activity's retries ran out) or that an operator terminated
through the Durable API never gets there, and its row would stay active for good: an
ORDERED_SEQUENTIAL job would wait on it forever and the retention purge never remove it.
So whoever looks at an active row (the turn check of the instances behind it, the hourly
purge) asks the durable backend too (`instance_fate`):

    orchestration busy (Pending, Running, ContinuedAsNew, Suspended)   RUNS
    orchestration Completed                                            ENDED, its output
    orchestration Failed / Terminated, Canceled                        ENDED FAILED / STOPPED
    no orchestration, row EXECUTABLE or EXECUTING                      ENDED FAILED (gone)
    no orchestration, row STAGING:
        its claim leased, or too young to have been leased             RUNS (being staged)
        its claim marked started                                       ENDED FAILED (gone)
        its claim lapsed (or no claim: a sub-instance's row)           NEVER_STARTED

The instance list does the same for the active rows of the page it shows
(`settle_listed_rows`), so an instance terminated with nothing queued behind it is listed
as ended at once rather than at the hourly timer.

An ENDED row is then settled (`settle_row`): its final row written with the reason,
under its ETag and only while it is still active, so a finish step that wins the race
keeps its own. A NEVER_STARTED row is passed by the queue and purged after the retention
(`shared.batch.retention`); it stays STAGING, so a new post of its id takes it over.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from shared.batch.claims import InstanceClaim, read_instance_claim
from shared.batch.instances import ACTIVE_STATUSES, STAGING, InstanceRow, active_instances
from shared.batch.messages import TurnAnswer, TurnRequest
from shared.batch.plan import BatchStatus
from shared.durable import BUSY_STATES, json_object
from shared.log_fields import log_event
from shared.storage.tables import ConcurrentWrite, read_entity, replace_if_unchanged

log = logging.getLogger(__name__)


class EndReason(enum.Enum):
    """Why an instance ended without its finish step."""

    ORCHESTRATION_FAILED = "ORCHESTRATION_FAILED"
    ORCHESTRATION_TERMINATED = "ORCHESTRATION_TERMINATED"
    ORCHESTRATION_MISSING = "ORCHESTRATION_MISSING"


class FateKind(enum.Enum):
    RUNS = "RUNS"
    ENDED = "ENDED"
    NEVER_STARTED = "NEVER_STARTED"


@dataclass(frozen=True)
class Orchestration:
    """What the durable client answered for an instance: its runtime state (None when no
    such orchestration exists), its output, and its custom status (the live
    BatchJobResult: the counts it had reached when it ended outside its finish step)."""

    state: str | None
    output: Any = None
    custom_status: Any = None


# Reads the orchestration of a durable instance id (the caller's durable client).
ReadOrchestration = Callable[[str], Awaitable[Orchestration]]


@dataclass(frozen=True)
class Fate:
    kind: FateKind
    status: BatchStatus | None = None  # ENDED: the final status
    reason: EndReason | None = None  # ENDED without the finish step: why
    message: str = ""
    result: dict[str, Any] | None = None  # ENDED Completed: the orchestration's output


RUNS = Fate(FateKind.RUNS)
NEVER_STARTED = Fate(FateKind.NEVER_STARTED)


def ended_outside(state: str, durable_id: str) -> Fate | None:
    """The fate of an instance whose orchestration is in runtime `state` and did not
    complete (Failed, Terminated, Canceled); None for any other state."""
    if state == "Failed":
        return Fate(FateKind.ENDED, BatchStatus.FAILED, EndReason.ORCHESTRATION_FAILED,
                    f"its orchestration {durable_id} failed (an activity's retries ran "
                    "out): see its log")
    if state in ("Terminated", "Canceled"):
        return Fate(FateKind.ENDED, BatchStatus.STOPPED, EndReason.ORCHESTRATION_TERMINATED,
                    f"its orchestration {durable_id} was {state.lower()} through the "
                    "Durable API")
    return None


def instance_fate(row: InstanceRow, orchestration: Orchestration,
                  claim: InstanceClaim | None, now: datetime) -> Fate:
    """Whether the instance of an active `row` still runs (see the module's table).
    `claim` matters for a STAGING row only."""
    state = orchestration.state
    if state in BUSY_STATES:
        return RUNS
    if state == "Completed":
        output = json_object(orchestration.output) or {}
        try:
            status = BatchStatus(output.get("status"))
        except ValueError:
            status = BatchStatus.FAILED
        if status.value in ACTIVE_STATUSES:  # not a final result: never an active row again
            status = BatchStatus.FAILED
        return Fate(FateKind.ENDED, status, result=output)
    if state is not None:
        fate = ended_outside(state, row.durable_id)
        if fate is None:
            return RUNS
        return replace(fate, result=counts_reached(orchestration.custom_status))
    if row.status == STAGING:
        if claim is None or (not claim.started and claim.abandoned(now)):
            return NEVER_STARTED
        if not claim.started:
            return RUNS  # a request holds the claim: it stages the records now
    return Fate(FateKind.ENDED, BatchStatus.FAILED, EndReason.ORCHESTRATION_MISSING,
                f"its orchestration {row.durable_id} no longer exists (its history was "
                "purged, or the task hub changed)")


def counts_reached(custom_status: Any) -> dict[str, Any] | None:
    """The counts of the live result an orchestration last showed (its custom status),
    without what only a waiting instance shows."""
    live = json_object(custom_status)
    if not live:
        return None
    return {key: value for key, value in live.items() if key not in ("status", "waitingFor")}


async def fate_of(row: InstanceRow, container: ContainerClient,
                  read_orchestration: ReadOrchestration, now: datetime) -> Fate:
    """`instance_fate` of an active row, its claim read only when it matters."""
    orchestration = await read_orchestration(row.durable_id)
    claim = None
    if row.status == STAGING and orchestration.state is None:
        claim = await asyncio.to_thread(read_instance_claim, container, row.job,
                                        row.instance_id)
    return instance_fate(row, orchestration, claim, now)


async def whose_turn(table: TableClient, container: ContainerClient, turn: TurnRequest,
                     read_orchestration: ReadOrchestration, now: datetime) -> TurnAnswer:
    """The ORDERED_SEQUENTIAL turn of instance `turn.instance_id`:

    1. the job's active rows, oldest first
    2. each one before the asking instance: RUNS -> its turn, the asker waits; ENDED ->
       its row is settled, and the next one is looked at; NEVER_STARTED -> passed
    3. none left before it: the asker's turn
    """
    rows = await asyncio.to_thread(active_instances, table, turn.job)
    for row in rows:
        if row.instance_id == turn.instance_id:
            break
        fate = await fate_of(row, container, read_orchestration, now)
        if fate.kind is FateKind.RUNS:
            return TurnAnswer(False, row.instance_id)
        if fate.kind is FateKind.ENDED and \
                not await asyncio.to_thread(settle_row, table, row, fate):
            return TurnAnswer(False, row.instance_id)  # written meanwhile: look again later
    return TurnAnswer(True)


def settle_row(table: TableClient, row: InstanceRow, fate: Fate) -> bool:
    """Write the final row of an instance that ended without its finish step: the result
    so far with the final status and the reason, only while the row is still active and
    unchanged since read here. True when the row is ended now (settled here, or ended
    before); False when it changed meanwhile and is still active."""
    assert fate.status is not None
    stored = read_entity(table, row.job, row.instance_id)
    if stored is None or stored.values.get("Status") not in ACTIVE_STATUSES:
        return True
    so_far = json_object(stored.values.get("Result")) or {"batchJobInstanceId":
                                                          row.instance_id}
    result = {**so_far, **(fate.result or {}), "status": fate.status.value}
    if fate.reason is not None:
        result.update(endReason=fate.reason.value, endMessage=fate.message)
    try:
        replace_if_unchanged(table, {**stored.values, "Status": fate.status.value,
                                     "Result": json.dumps(result)}, stored.etag)
    except ConcurrentWrite:
        return False
    log_event(log, "batch instance settled", level=logging.WARNING, batch_job=row.job,
              instance_id=row.instance_id, status=fate.status.value,
              reason=fate.reason.value if fate.reason else None, row_status=row.status)
    return True


# Durable status reads at once while a page of the instance list is settled.
_LISTED_READS_AT_ONCE = 8


async def settle_listed_rows(table: TableClient, container: ContainerClient,
                             rows: list[InstanceRow], read_orchestration: ReadOrchestration,
                             now: datetime) -> list[InstanceRow]:
    """`rows` (a page of the instance list) as they are once each active one whose
    instance ended without its finish step is settled: one durable status read per active
    row, none for a finished one. A row that runs, never started or changed meanwhile is
    shown as read."""
    reads = asyncio.Semaphore(_LISTED_READS_AT_ONCE)

    async def settled(row: InstanceRow) -> InstanceRow:
        if row.status not in ACTIVE_STATUSES:
            return row
        async with reads:
            fate = await fate_of(row, container, read_orchestration, now)
        if fate.kind is not FateKind.ENDED or \
                not await asyncio.to_thread(settle_row, table, row, fate):
            return row
        stored = await asyncio.to_thread(read_entity, table, row.job, row.instance_id)
        return row if stored is None else InstanceRow.from_entity(stored.values)

    return list(await asyncio.gather(*(settled(row) for row in rows)))
