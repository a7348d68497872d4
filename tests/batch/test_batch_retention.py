"""The retention purge (shared.batch.retention) on Azurite: finished instances past the
retention go with their blobs; active ones and young ones stay; a purge cut short is
finished by the next run, and no row ever points at blobs that are gone unless it says so."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.batch.claims import claim_instance_id, read_instance_claim
from shared.batch.instances import (
    EXECUTABLE,
    EXECUTING,
    PURGING,
    STAGING,
    active_instances,
    record_staging,
    set_status,
)
from shared.batch.liveness import Orchestration
from shared.batch.retention import (
    mark_purging,
    purge_instances,
    purge_never_started,
    purgeable_instances,
    sweep_active_rows,
)
from shared.batch.settings import BatchSettings
from shared.batch.store import AzureBlobStore, InstanceFolder
from shared.config.framework import read_section
from shared.storage.tables import table_client

RETENTION = timedelta(days=3)
JOB = "kept"


@pytest.fixture
def table(azurite) -> TableClient:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return table_client(service, "Instances" + uuid.uuid4().hex[:10])


@pytest.fixture
def store(azurite) -> AzureBlobStore:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return AzureBlobStore.in_container(service, "retention-" + uuid.uuid4().hex[:10])


def _instance(table: TableClient, store: AzureBlobStore, instance_id: str,
              status: str, created: datetime | None = None) -> None:
    record_staging(table, JOB, instance_id, f"batch-{JOB}-{instance_id}",
                   created or datetime.now(UTC))
    folder = InstanceFolder(JOB, instance_id)
    for name in (folder.manifest, folder.block_state(0), folder.failures_report):
        store.write(name, b"{}")
    if status != STAGING:
        set_status(table, JOB, instance_id, status, {"status": status})


def _rows(table: TableClient) -> dict[str, str]:
    """The instance rows; each has its index row (and no index row outlives its row)."""
    entities = list(table.query_entities("PartitionKey eq @job", parameters={"job": JOB}))
    rows = {row["RowKey"]: row["Status"] for row in entities if "Status" in row}
    assert sorted(row["InstanceId"] for row in entities if "Status" not in row) == \
        sorted(rows)
    return rows


def _folders(store: AzureBlobStore) -> set[str]:
    return {name.split("/")[1] for name in store.names(JOB + "/")}


class Forgotten:
    """The durable client's purge of an orchestration's history, as the purge calls it."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.ids: list[str] = []
        self.failing = failing or set()

    async def __call__(self, durable_id: str) -> None:
        if durable_id in self.failing:
            raise ConnectionError("the durable API did not answer")
        self.ids.append(durable_id)


def test_only_finished_instances_past_the_retention_are_purged(table, store) -> None:
    for index, status in enumerate(("SUCCESSFUL", "FAILED_PROCESS_RECORDS", "FAILED_INPUT",
                                    "FAILED_LOADING")):
        _instance(table, store, f"old-{index}", status)
    for status in (STAGING, EXECUTABLE, EXECUTING):  # active, however old
        _instance(table, store, status.lower(), status)
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    _instance(table, store, "young", "SUCCESSFUL")
    forgotten = Forgotten()

    candidates = purgeable_instances(table, JOB, cutoff + RETENTION, RETENTION, limit=100)
    purged = asyncio.run(purge_instances(table, store, candidates, forgotten))

    assert purged == 4
    assert sorted(forgotten.ids) == [f"batch-{JOB}-old-{index}" for index in range(4)]
    assert _rows(table) == {"staging": STAGING, "executable": EXECUTABLE,
                            "executing": EXECUTING, "young": "SUCCESSFUL"}
    assert _folders(store) == {"staging", "executable", "executing", "young"}
    # Years later, the active ones are still never selected.
    later = purgeable_instances(table, JOB, cutoff + timedelta(days=3650), RETENTION, 100)
    assert [candidate.row.instance_id for candidate in later] == ["young"]


def test_a_purge_cut_short_is_finished_by_the_next_run(table, store) -> None:
    for name in ("a", "b", "c"):
        _instance(table, store, name, "SUCCESSFUL")
    now = datetime.now(UTC) + RETENTION + timedelta(seconds=1)
    broken = Forgotten(failing={f"batch-{JOB}-b"})

    first = asyncio.run(purge_instances(
        table, store, purgeable_instances(table, JOB, now, RETENTION, 100), broken))

    assert first == 2
    # b's blobs went before its orchestration could be forgotten: its row says so, and
    # the ordered queue does not count it.
    assert _rows(table) == {"b": PURGING}
    assert _folders(store) == set()
    assert active_instances(table, JOB) == []
    # Its row was written just now, yet the next run takes it up again.
    again = purgeable_instances(table, JOB, datetime.now(UTC), RETENTION, 100)
    assert [candidate.row.instance_id for candidate in again] == ["b"]
    assert asyncio.run(purge_instances(table, store, again, Forgotten())) == 1
    assert _rows(table) == {}


def test_a_row_written_after_it_was_read_is_left_for_a_later_run(table, store) -> None:
    _instance(table, store, "moving", "SUCCESSFUL")
    now = datetime.now(UTC) + RETENTION + timedelta(seconds=1)
    [candidate] = purgeable_instances(table, JOB, now, RETENTION, 100)
    set_status(table, JOB, "moving", "SUCCESSFUL", {"status": "SUCCESSFUL", "late": True})

    assert mark_purging(table, candidate) is None
    assert asyncio.run(purge_instances(table, store, [candidate], Forgotten())) == 0
    assert _rows(table) == {"moving": "SUCCESSFUL"}
    assert _folders(store) == {"moving"}


class Durable:
    """The durable client's answers by durable id (none: no such orchestration)."""

    def __init__(self, **states: str) -> None:
        self.states = {f"batch-{JOB}-{name}": state for name, state in states.items()}

    async def __call__(self, durable_id: str) -> Orchestration:
        return Orchestration(self.states.get(durable_id))


def _purge_run(table: TableClient, store: AzureBlobStore, durable: Durable,
               now: datetime) -> int:
    """What the hourly timer does for one job."""
    async def run() -> int:
        never = await sweep_active_rows(table, store.container, JOB, durable, now, RETENTION)
        purged = await purge_never_started(table, store, store.container, never,
                                           Forgotten(), now)
        return purged + await purge_instances(
            table, store, purgeable_instances(table, JOB, now, RETENTION, 100), Forgotten())
    return asyncio.run(run())


def test_instances_that_never_started_or_ended_outside_are_purged_too(table, store) -> None:
    """A STAGING row whose request died before starting it (claim lapsed) or whose caller
    never started it (a sub-instance's row, no claim) goes after the retention; so does an
    instance whose orchestration failed, once its row was settled a retention ago."""
    old = datetime.now(UTC) - RETENTION - timedelta(minutes=5)
    _instance(table, store, "lapsed", STAGING, old)
    hold = claim_instance_id(store.container, JOB, "lapsed", "fingerprint")
    assert hold is not None
    hold.release()  # its request died: the lease lapses
    _instance(table, store, "unclaimed", STAGING, old)
    _instance(table, store, "held", STAGING, old)  # a request stages it right now
    assert claim_instance_id(store.container, JOB, "held", "fingerprint") is not None
    _instance(table, store, "young", STAGING)
    _instance(table, store, "failed", EXECUTING, old)
    now = datetime.now(UTC) + timedelta(seconds=30)  # the lapsed lease is over

    assert _purge_run(table, store, Durable(failed="Failed"), now) == 2

    assert _rows(table) == {"held": STAGING, "young": STAGING, "failed": "FAILED"}
    assert _folders(store) == {"held", "young", "failed"}
    # The lapsed claim stays abandoned (a post of the id takes it over); none was left
    # behind for the row that had none.
    lapsed = read_instance_claim(store.container, JOB, "lapsed")
    assert lapsed is not None and not lapsed.started and not lapsed.leased
    assert read_instance_claim(store.container, JOB, "unclaimed") is None
    # A retention later the failed one goes as any finished one (and the young one, never
    # started, too); the one whose claim a request holds stays.
    assert _purge_run(table, store, Durable(failed="Failed"), now + RETENTION) == 2
    assert _rows(table) == {"held": STAGING}


def test_a_run_purges_at_most_its_limit(table, store) -> None:
    for index in range(5):
        _instance(table, store, f"i{index}", "SUCCESSFUL")
    now = datetime.now(UTC) + RETENTION + timedelta(seconds=1)

    assert len(purgeable_instances(table, JOB, now, RETENTION, limit=2)) == 2


@pytest.mark.parametrize(("value", "accepted"), [
    ("259200", True), ("0", True), ("72:00:00", True), ("3600", True),
    ("60", False), ("-1", False), ("three days", False)])
def test_the_retention_setting_is_checked_at_start_up(value: str, accepted: bool) -> None:
    section, problems = read_section(BatchSettings, {"BATCH_INSTANCE_RETENTION": value})
    if accepted:
        assert section is not None and not problems, problems
    else:
        assert problems and all("BATCH_INSTANCE_RETENTION" in text for text in problems)
