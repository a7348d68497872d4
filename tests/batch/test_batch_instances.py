"""The instance rows in Table Storage (shared.batch.instances): the ordered queue reads
only the rows that may still run, however many finished ones the job has."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient

from shared.batch.instances import (
    ACTIVE_STATUSES,
    EXECUTABLE,
    STAGING,
    active_instances,
    first_active,
    index_earlier_rows,
    instances_page,
    mark_row_executing,
    mark_row_started,
    record_staging,
    release_instance,
    set_status,
)
from shared.batch.plan import BatchStatus
from shared.batch.retention import ENDED_STATUSES
from shared.storage.tables import table_client

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ENDED = ("SUCCESSFUL", "FAILED_PROCESS_RECORDS", "FAILED_INPUT", "FAILED_LOADING", "FAILED",
         "STOPPED")


class CountingTable:
    """The real Azurite table client, counting the entities its queries hand back."""

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.entities_read = 0

    def query_entities(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for entity in self.table.query_entities(*args, **kwargs):
            self.entities_read += 1
            yield entity

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.fixture
def table(azurite) -> TableClient:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return table_client(service, "Instances" + uuid.uuid4().hex[:10])


def _row(table: TableClient, job: str, instance_id: str, created: datetime,
         status: str) -> None:
    record_staging(table, job, instance_id, f"batch-{job}-{instance_id}", created)
    if status != STAGING:
        set_status(table, job, instance_id, status,
                   {"status": status} if status in ENDED else None)


def test_every_status_before_the_final_row_is_active() -> None:
    """The filter names the active statuses: one added to BatchStatus must be named too,
    or the queue would not see instances in it."""
    final = {BatchStatus.SUCCESSFUL, BatchStatus.FAILED_PROCESS_RECORDS,
             BatchStatus.FAILED_INPUT, BatchStatus.FAILED_LOADING, BatchStatus.FAILED,
             BatchStatus.STOPPED}
    assert {status.value for status in BatchStatus} - {s.value for s in final} \
        == set(ACTIVE_STATUSES) - {STAGING}
    assert set(ENDED) == {status.value for status in final} == set(ENDED_STATUSES)


def test_the_queue_reads_only_active_rows_among_hundreds_of_finished_ones(table) -> None:
    job = "ordered"
    for n in range(300):
        _row(table, job, f"done-{n:03d}", T0 + timedelta(seconds=n), ENDED[n % len(ENDED)])
    # Active rows older and younger than finished ones, and rows of another job.
    _row(table, job, "waiting", T0 + timedelta(seconds=150, milliseconds=1), EXECUTABLE)
    _row(table, job, "running", T0 + timedelta(seconds=120, milliseconds=1), "EXECUTING")
    _row(table, job, "staging", T0 + timedelta(seconds=400), STAGING)
    _row(table, "other", "elsewhere", T0 - timedelta(days=1), "EXECUTING")
    counting = CountingTable(table)

    rows = active_instances(counting, job)  # type: ignore[arg-type]

    assert [row.instance_id for row in rows] == ["running", "waiting", "staging"]
    assert [row.status for row in rows] == ["EXECUTING", EXECUTABLE, STAGING]
    assert counting.entities_read == 3  # not the 303 rows of the job
    assert first_active(rows, live_staging=set()).instance_id == "running"  # type: ignore[union-attr]


def test_a_staging_row_counts_only_while_its_claim_is_alive(table) -> None:
    _row(table, "ordered", "early", T0, STAGING)
    _row(table, "ordered", "late", T0 + timedelta(seconds=1), EXECUTABLE)
    rows = active_instances(table, "ordered")

    assert first_active(rows, live_staging={"early"}).instance_id == "early"  # type: ignore[union-attr]
    assert first_active(rows, live_staging=set()).instance_id == "late"  # type: ignore[union-attr]


def test_a_finished_instance_leaves_the_queue_and_never_comes_back(table) -> None:
    _row(table, "ordered", "short", T0, STAGING)
    set_status(table, "ordered", "short", "SUCCESSFUL", {"status": "SUCCESSFUL"})
    # Its request marks it started after the instance already ended: nothing changes.
    mark_row_started(table, "ordered", "short")

    assert active_instances(table, "ordered") == []
    assert table.get_entity("ordered", "short")["Status"] == "SUCCESSFUL"


def test_a_page_of_the_list_reads_its_own_rows_only_newest_first(table) -> None:
    for n in range(300):
        _row(table, "listed", f"i{n:03d}", T0 + timedelta(seconds=n), ENDED[n % len(ENDED)])
    counting = CountingTable(table)

    first, following = instances_page(counting, "listed", 50)  # type: ignore[arg-type]

    newest_first = [f"i{n:03d}" for n in reversed(range(300))]
    assert [row.instance_id for row in first] == newest_first[:50]
    assert first[0].status == ENDED[299 % len(ENDED)]
    assert following is not None and following.endswith("-i250")
    assert counting.entities_read == 51  # one more than the page tells whether one follows
    seen = [row.instance_id for row in first]
    while following is not None:
        page, following = instances_page(table, "listed", 120, following)
        seen += [row.instance_id for row in page]
    assert seen == newest_first


def test_the_list_follows_takeovers_and_deletions(table) -> None:
    """A row written anew (a takeover) is listed once, where its new time puts it; a row
    deleted (a failed start) is listed no more, and the page is still full."""
    for n in range(5):
        _row(table, "listed", f"i{n}", T0 + timedelta(seconds=n), STAGING)
    record_staging(table, "listed", "i1", "batch-listed-i1", T0 + timedelta(seconds=10))
    release_instance(table, "listed", "i3")

    rows, following = instances_page(table, "listed", 3)
    assert [row.instance_id for row in rows] == ["i1", "i4", "i2"]
    rest, last = instances_page(table, "listed", 3, following)
    assert ([row.instance_id for row in rest], last) == (["i0"], None)
    # Rows and index rows only: nothing is left of i3, and i1 has one index row.
    keys = [entity["RowKey"] for entity in table.list_entities()]
    assert sorted(key for key in keys if not key.startswith("~")) == ["i0", "i1", "i2", "i4"]
    assert len([key for key in keys if key.startswith("~")]) == 4


def test_a_redelivered_executing_record_never_reopens_an_ended_row(table) -> None:
    """batch_record_status writes EXECUTING as the instance takes its turn; delivered again
    after the finish step wrote the final row, it leaves that row ended."""
    _row(table, "ordered", "taken", T0, EXECUTABLE)
    assert mark_row_executing(table, "ordered", "taken", {"status": "EXECUTING"})
    assert table.get_entity("ordered", "taken")["Status"] == "EXECUTING"
    set_status(table, "ordered", "taken", "SUCCESSFUL", {"status": "SUCCESSFUL"})

    assert not mark_row_executing(table, "ordered", "taken", {"status": "EXECUTING"})

    stored = table.get_entity("ordered", "taken")
    assert (stored["Status"], stored["Result"]) == ("SUCCESSFUL", '{"status": "SUCCESSFUL"}')
    assert active_instances(table, "ordered") == []
    # Nor does it write a row that is gone (purged).
    assert not mark_row_executing(table, "ordered", "purged", {"status": "EXECUTING"})
    assert [row["RowKey"] for row in table.list_entities()
            if not row["RowKey"].startswith("~")] == ["taken"]


def test_rows_written_before_the_index_existed_are_listed_once_indexed(table) -> None:
    for n in range(3):  # as an earlier version wrote them: the instance row alone
        table.create_entity({"PartitionKey": "old", "RowKey": f"i{n}", "DurableId": "",
                             "Created": (T0 + timedelta(seconds=n)).isoformat(),
                             "Status": "SUCCESSFUL"})
    assert instances_page(table, "old", 10) == ([], None)

    assert index_earlier_rows(table, "old") == 3
    assert index_earlier_rows(table, "old") == 0  # once: marked done

    assert [row.instance_id for row in instances_page(table, "old", 10)[0]] == [
        "i2", "i1", "i0"]
