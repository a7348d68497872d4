"""Whether an active row's instance still runs (shared.batch.liveness), on Azurite: an
instance whose orchestration failed, was terminated or is gone has its row settled and is
passed by the ordered queue; one still running or still being staged holds the queue."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.batch.claims import InstanceClaim, claim_instance_id
from shared.batch.instances import (
    EXECUTABLE,
    EXECUTING,
    STAGING,
    InstanceRow,
    active_instances,
    instances_page,
    mark_row_executing,
    record_staging,
    set_status,
)
from shared.batch.liveness import (
    EndReason,
    FateKind,
    Orchestration,
    instance_fate,
    settle_listed_rows,
    settle_row,
    whose_turn,
)
from shared.batch.messages import TurnAnswer, TurnRequest
from shared.batch.plan import BatchStatus
from shared.storage.tables import table_client

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
JOB = "ordered"


def _row(status: str) -> InstanceRow:
    return InstanceRow(JOB, "i1", f"batch-{JOB}-i1", NOW - timedelta(hours=1), status, None)


def _claim(started: bool = False, leased: bool = False, age: float = 60.0) -> InstanceClaim:
    return InstanceClaim(started, NOW - timedelta(seconds=age), leased)


@pytest.mark.parametrize(("status", "state", "claim", "kind", "final", "reason"), [
    (EXECUTING, "Running", None, FateKind.RUNS, None, None),
    (EXECUTABLE, "Pending", None, FateKind.RUNS, None, None),
    (EXECUTING, "Suspended", None, FateKind.RUNS, None, None),
    (EXECUTING, "Failed", None, FateKind.ENDED, "FAILED", EndReason.ORCHESTRATION_FAILED),
    (EXECUTABLE, "Terminated", None, FateKind.ENDED, "STOPPED",
     EndReason.ORCHESTRATION_TERMINATED),
    (STAGING, "Terminated", _claim(started=True), FateKind.ENDED, "STOPPED",
     EndReason.ORCHESTRATION_TERMINATED),
    (EXECUTING, None, None, FateKind.ENDED, "FAILED", EndReason.ORCHESTRATION_MISSING),
    (STAGING, None, _claim(leased=True), FateKind.RUNS, None, None),
    (STAGING, None, _claim(age=1), FateKind.RUNS, None, None),  # not leased yet
    (STAGING, None, _claim(started=True), FateKind.ENDED, "FAILED",
     EndReason.ORCHESTRATION_MISSING),
    (STAGING, None, _claim(), FateKind.NEVER_STARTED, None, None),  # lease lapsed
    (STAGING, None, None, FateKind.NEVER_STARTED, None, None),  # a sub-instance's row
])
def test_the_fate_of_an_active_row(status, state, claim, kind, final, reason) -> None:
    fate = instance_fate(_row(status), Orchestration(state), claim, NOW)
    assert (fate.kind, fate.status.value if fate.status else None, fate.reason) == (
        kind, final, reason)


def test_a_completed_orchestration_gives_its_own_final_result() -> None:
    output = json.dumps({"status": "FAILED_PROCESS_RECORDS", "failedRecords": 4})
    fate = instance_fate(_row(EXECUTING), Orchestration("Completed", output), None, NOW)
    assert (fate.status, fate.reason, fate.result) == (
        BatchStatus.FAILED_PROCESS_RECORDS, None, json.loads(output))
    # An output that is no final result never leaves the row active.
    odd = instance_fate(_row(EXECUTING), Orchestration("Completed", {"status": "EXECUTING"}),
                        None, NOW)
    assert odd.status is BatchStatus.FAILED


@pytest.fixture
def table(azurite) -> TableClient:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return table_client(service, "Instances" + uuid.uuid4().hex[:10])


@pytest.fixture
def container(azurite) -> ContainerClient:
    client = BlobServiceClient.from_connection_string(
        azurite.connection_string).get_container_client("liveness-" + uuid.uuid4().hex[:10])
    client.create_container()
    return client


def _instance(table: TableClient, instance_id: str, minute: int, status: str) -> None:
    record_staging(table, JOB, instance_id, f"batch-{JOB}-{instance_id}",
                   NOW + timedelta(minutes=minute))
    if status == EXECUTING:
        mark_row_executing(table, JOB, instance_id, {"batchJobInstanceId": instance_id,
                                                     "status": EXECUTING,
                                                     "processedRecords": 5})
    elif status != STAGING:
        set_status(table, JOB, instance_id, status)


class Durable:
    """The durable client's answers, by durable id; every id asked for is noted."""

    def __init__(self, **states: str) -> None:
        self.states = {f"batch-{JOB}-{name}": state for name, state in states.items()}
        self.asked: list[str] = []

    async def __call__(self, durable_id: str) -> Orchestration:
        self.asked.append(durable_id)
        return Orchestration(self.states.get(durable_id))


def _turn(table: TableClient, container: ContainerClient, instance_id: str,
          durable: Durable) -> TurnAnswer:
    return asyncio.run(whose_turn(table, container, TurnRequest(JOB, instance_id), durable,
                                  datetime.now(UTC)))


def test_the_queue_settles_failed_and_terminated_instances_and_goes_on(
        table, container) -> None:
    _instance(table, "failed", 0, EXECUTING)
    _instance(table, "stopped", 1, EXECUTABLE)
    _instance(table, "never", 2, STAGING)  # its request died before starting it: no claim
    _instance(table, "me", 3, EXECUTABLE)
    durable = Durable(failed="Failed", stopped="Terminated", me="Running")

    assert _turn(table, container, "me", durable) == TurnAnswer(True)

    rows = {row["RowKey"]: row for row in table.list_entities() if "Status" in row}
    assert {name: row["Status"] for name, row in rows.items()} == {
        "failed": "FAILED", "stopped": "STOPPED", "never": STAGING, "me": EXECUTABLE}
    failed = json.loads(rows["failed"]["Result"])
    assert (failed["status"], failed["endReason"], failed["processedRecords"]) == (
        "FAILED", "ORCHESTRATION_FAILED", 5)  # the counts it had reached stay
    assert json.loads(rows["stopped"]["Result"])["endReason"] == "ORCHESTRATION_TERMINATED"
    assert [row.instance_id for row in active_instances(table, JOB)] == ["never", "me"]
    # The younger instances are none of the asker's business.
    assert f"batch-{JOB}-me" not in durable.asked


def test_a_running_or_staging_predecessor_holds_the_queue(table, container) -> None:
    _instance(table, "running", 0, EXECUTING)
    _instance(table, "me", 1, EXECUTABLE)
    assert _turn(table, container, "me", Durable(running="Running")) == \
        TurnAnswer(False, "running")

    set_status(table, JOB, "running", "SUCCESSFUL", {"status": "SUCCESSFUL"})
    _instance(table, "staging", 0, STAGING)
    hold = claim_instance_id(container, JOB, "staging", "fingerprint")
    assert hold is not None  # a request holds the claim and stages the records
    assert _turn(table, container, "me", Durable()) == TurnAnswer(False, "staging")
    assert table.get_entity(JOB, "staging")["Status"] == STAGING


def test_a_final_row_written_meanwhile_is_never_overwritten(table) -> None:
    _instance(table, "racing", 0, EXECUTING)
    row = active_instances(table, JOB)[0]
    fate = instance_fate(row, Orchestration("Terminated"), None, NOW)
    set_status(table, JOB, "racing", "SUCCESSFUL", {"status": "SUCCESSFUL"})

    assert settle_row(table, row, fate)  # ended: nothing more to do
    assert table.get_entity(JOB, "racing")["Result"] == '{"status": "SUCCESSFUL"}'


def test_the_list_settles_the_ended_rows_it_shows_and_asks_only_for_active_ones(
        table, container) -> None:
    """A page of the instance list shows an instance terminated with nothing behind it
    as ended (its row settled); before, it stayed EXECUTING until the hourly timer."""
    _instance(table, "done", 0, EXECUTING)
    set_status(table, JOB, "done", "SUCCESSFUL", {"status": "SUCCESSFUL"})
    _instance(table, "stopped", 1, EXECUTING)
    _instance(table, "running", 2, EXECUTING)
    _instance(table, "never", 3, STAGING)  # its request died before starting it: no claim
    durable = Durable(stopped="Terminated", running="Running")
    page, _next = instances_page(table, JOB, 10)

    listed = asyncio.run(settle_listed_rows(table, container, page, durable,
                                            datetime.now(UTC)))

    assert {row.instance_id: row.status for row in listed} == {
        "done": "SUCCESSFUL", "stopped": "STOPPED", "running": EXECUTING, "never": STAGING}
    assert [row.instance_id for row in listed] == [row.instance_id for row in page]
    stopped = next(row for row in listed if row.instance_id == "stopped")
    assert stopped.result is not None
    assert (stopped.result["endReason"], stopped.result["processedRecords"]) == (
        "ORCHESTRATION_TERMINATED", 5)
    assert table.get_entity(JOB, "stopped")["Status"] == "STOPPED"
    assert table.get_entity(JOB, "running")["Status"] == EXECUTING
    assert f"batch-{JOB}-done" not in durable.asked  # a finished row costs no status read
