"""An instance id's claim: a request that died after claiming it neither keeps the id nor
blocks the ordered queue (shared/batch/claims.py, orchestrators/batch/start.py)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from shared.batch import batch_durable_id
from shared.batch.claims import (
    InstanceClaim,
    claim_instance_id,
    records_fingerprint,
    refused_claim,
)
from shared.batch.instances import record_staging
from shared.storage.leased_claim import ABANDONED_CLAIM_AFTER, CLAIM_LEASE_SECONDS
from shared.storage.tables import table_client
from tests.batch.test_batch_on_local_host import _spans, contacts

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _claim(started: bool = False, leased: bool = False, age: timedelta = timedelta(0),
           fingerprint: str = "same") -> InstanceClaim:
    return InstanceClaim(started, NOW - age, leased, fingerprint)


def _code(claim: InstanceClaim | None, fingerprint: str = "same") -> str | None:
    refused = refused_claim(claim, fingerprint, "job", "i1", NOW, "/api/batch-jobs/job")
    return None if refused is None else refused.body["code"]


def test_a_claim_is_taken_over_only_once_its_lease_lapsed_without_a_start() -> None:
    old = ABANDONED_CLAIM_AFTER + timedelta(seconds=1)
    assert _code(_claim(leased=True, age=old)) == "INSTANCE_STARTING"
    assert _code(_claim(age=timedelta(seconds=1))) == "INSTANCE_STARTING"  # not leased yet
    assert _code(None) == "INSTANCE_STARTING"  # deleted under us: ask again
    assert _code(_claim(started=True, age=old)) == "INSTANCE_ID_USED"
    assert _code(_claim(age=old)) is None
    # The records of a request that died were never loaded: other records may take over.
    assert _code(_claim(age=old), fingerprint="other") is None


def test_other_records_under_a_held_or_started_claim_are_a_conflict() -> None:
    assert _code(_claim(leased=True), fingerprint="other") == "INSTANCE_ID_CONFLICT"
    assert _code(_claim(started=True), fingerprint="other") == "INSTANCE_ID_CONFLICT"


def _abandon_claim(batch, job: str, instance_id: str, records: list[dict]) -> None:
    """What a request that died right after claiming leaves: a leased claim that nobody
    renews, and the instance's STAGING row."""
    service = BlobServiceClient.from_connection_string(batch.env["AzureWebJobsStorage"])
    container = service.get_container_client(batch.env["BATCH_CONTAINER"])
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    assert claim_instance_id(container, job, instance_id, records_fingerprint(records))
    from azure.data.tables import TableServiceClient

    table = table_client(TableServiceClient.from_connection_string(
        batch.env["AzureWebJobsStorage"]), batch.env["BATCH_INSTANCES_TABLE"])
    record_staging(table, job, instance_id, batch_durable_id(job, instance_id),
                   datetime.now(UTC))


def test_an_abandoned_claim_is_taken_over_and_does_not_block_the_ordered_queue(
        start_batch_host) -> None:
    batch = start_batch_host()
    records = contacts(7)
    _abandon_claim(batch, "ordered", "dead", records)

    starting = batch.post("ordered", records, instanceId="dead")
    assert starting.status_code == 409, starting.text
    assert starting.json()["code"] == "INSTANCE_STARTING"
    assert starting.headers["Retry-After"] == str(CLAIM_LEASE_SECONDS)
    other = batch.post("ordered", contacts(8), instanceId="dead")
    assert (other.status_code, other.json()["code"]) == (409, "INSTANCE_ID_CONFLICT")

    # A later instance is not held up by the dead claim (before: for 10 minutes).
    assert batch.post("ordered", contacts(10), instanceId="next").status_code == 202
    assert batch.wait_for_end("ordered", "next", timeout=120)["status"] == "SUCCESSFUL"

    # The client's retry of the dead id takes the claim over and runs its records.
    deadline = time.monotonic() + 3 * CLAIM_LEASE_SECONDS
    retried = batch.post("ordered", records, instanceId="dead")
    while retried.status_code == 409 and time.monotonic() < deadline:
        assert retried.json()["code"] == "INSTANCE_STARTING"
        time.sleep(1)
        retried = batch.post("ordered", records, instanceId="dead")
    assert retried.status_code == 202, retried.text
    result = batch.wait_for_end("ordered", "dead")
    assert (result["status"], result["processedRecords"]) == ("SUCCESSFUL", 7)
    spans = _spans(batch)
    assert spans["next"][1] < spans["dead"][0], spans  # it queued from its takeover

    again = batch.post("ordered", records, instanceId="dead")
    assert (again.status_code, again.json()["code"]) == (409, "INSTANCE_ID_USED")
    other = batch.post("ordered", contacts(8), instanceId="dead")
    assert (other.status_code, other.json()["code"]) == (409, "INSTANCE_ID_CONFLICT")
    listed = {row["batchJobInstanceId"]: row["status"]
              for row in batch.get("/api/batch-jobs/ordered").json()["instances"]}
    assert listed == {"next": "SUCCESSFUL", "dead": "SUCCESSFUL"}
