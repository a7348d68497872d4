"""Staging an instance from inside an activity (shared.batch.sub_orchestration), and reading
its per-record failures back from the report (shared.batch.failures)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient

from shared.batch.failures import read_record_failures
from shared.batch.instances import instances_page
from shared.batch.job import BatchJob, BatchRecord, BatchStep, StepFailure
from shared.batch.loading import Manifest
from shared.batch.settings import BatchSettings
from shared.batch.store import InstanceFolder, MemoryBlobStore
from shared.batch.sub_orchestration import InstanceIdTaken, stage_sub_instance
from shared.config.framework import read_section
from shared.storage.tables import table_client
from tests.batch.engine_harness import run_instance


def refuse(record: BatchRecord) -> None:
    if record.payload["name"] != "ok":
        raise ValueError(record.payload["name"])


JOB = BatchJob("staged", block_size=2, max_failed_records=-1, steps=(BatchStep("check", refuse),))


def batch_settings() -> BatchSettings:
    section, problems = read_section(BatchSettings, {"BATCH_ACTIVITY_ATTEMPTS": "4",
                                                     "BATCH_BLOCKS_PER_GENERATION": "7"})
    assert section is not None, problems
    return section


SETTINGS = batch_settings()


@pytest.fixture
def table(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return table_client(service, "Instances" + uuid.uuid4().hex[:10])


def test_staging_again_answers_the_same_input_and_stages_nothing_twice(table) -> None:
    store = MemoryBlobStore.empty()
    records = [{"name": f"r{n}"} for n in range(5)]
    now = datetime(2025, 1, 2, tzinfo=UTC)

    first = stage_sub_instance(JOB, "drain-a-1", records, store, table, SETTINGS, now)
    blobs = dict(store.blobs)
    again = stage_sub_instance(JOB, "drain-a-1", records, store, table, SETTINGS, now)

    assert again == first
    assert store.blobs == blobs  # same blobs, same ETags: nothing written again
    assert (first.progress.total_records, first.progress.block_count) == (5, 3)
    assert (first.activity_attempts, first.blocks_per_generation) == (4, 7)
    manifest = Manifest.read(store, InstanceFolder("staged", "drain-a-1"))
    assert manifest is not None and manifest.total_records == 5
    [row], _next = instances_page(table, "staged", 10)
    assert (row.instance_id, row.durable_id, row.status) == (
        "drain-a-1", "batch-staged-drain-a-1", "STAGING")


def test_an_instance_id_staged_with_other_records_is_refused(table) -> None:
    store = MemoryBlobStore.empty()
    now = datetime.now(UTC)
    stage_sub_instance(JOB, "drain-b-1", [{"name": "ok"}], store, table, SETTINGS, now)

    with pytest.raises(InstanceIdTaken, match="staged with 1 records, not 2"):
        stage_sub_instance(JOB, "drain-b-1", [{"name": "ok"}] * 2, store, table, SETTINGS, now)


def test_record_failures_are_read_back_as_they_were_raised() -> None:
    run = run_instance(JOB, [{"name": "ok"}, {"name": "=1+2"}, {"name": "ok"},
                             {"name": "plain, \"quoted\"\nline"}])

    failures = read_record_failures(run.store, InstanceFolder("staged", "i1"))

    assert failures == {1: StepFailure("check", "ValueError", "=1+2"),
                        3: StepFailure("check", "ValueError", "plain, \"quoted\"\nline")}
    with pytest.raises(LookupError):
        read_record_failures(MemoryBlobStore.empty(), InstanceFolder("staged", "none"))
