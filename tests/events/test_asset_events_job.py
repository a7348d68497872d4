"""The batch job `asset-events` through the batch engine (in process, over a memory blob
store) on real services: the asset changes view in SQLite -> the simulator's Asset; and
its per-record results mapped back to the events' outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from sfsim.testing import SimulatorHandle
from shared.batch.failures import read_record_failures
from shared.batch.job import StepFailure
from shared.batch.store import InstanceFolder, MemoryBlobStore
from shared.events.asset_events_job import JOB_NAME, asset_events_job
from shared.events.batch_processing import (
    event_outcomes,
    event_record,
    processed_batch,
    stage_event_batch,
)
from shared.events.messages import (
    BatchEnd,
    EventOutcome,
    EventRef,
    ProcessedBatch,
    StageBatchRequest,
)
from shared.events.validation import Operation
from shared.events.view_source import ViewSource, asset_view_source
from shared.salesforce import SalesforceClient
from tests.batch.engine_harness import run_instance
from tests.sync.sources import BASE, AssetSource


def ref(record_id: int, operation: Operation = Operation.UPSERT) -> EventRef:
    return EventRef("Asset", str(record_id), operation, None, 0, "etag")


def outcomes_of(events: list[EventRef], sources: dict[str, ViewSource],
                salesforce: Callable[[], SalesforceClient]) -> list[EventOutcome]:
    """The events through one instance of the job, mapped back as the drain maps them."""
    run = run_instance(asset_events_job(sources, salesforce),
                       [event_record(event) for event in events])
    batch = processed_batch("i1", run.result)
    return event_outcomes(len(events), batch,
                          read_record_failures(run.store, InstanceFolder(JOB_NAME, "i1")))


def composite_calls(sfsim: SimulatorHandle) -> list[dict]:
    return [entry for entry in sfsim.requests_log() if "composite/sobjects" in entry["path"]]


def test_upserts_read_the_view_row_and_deletes_remove_the_asset(sqlite_assets: AssetSource,
                                                                  sfsim, sf_client):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 251))
    sources = {"Asset": asset_view_source(sqlite_assets.connection_string, sqlite_assets.view,
                                          "sqlite", 5, 30)}

    upserted = outcomes_of([ref(asset_id) for asset_id in range(1, 251)], sources,
                           lambda: sf_client)

    assert upserted == [EventOutcome(True)] * 250
    stored = {record["External_Id__c"]: record for record in sfsim.records("Asset")}
    assert len(stored) == 250
    assert stored["ASSET-17"]["SerialNumber"] == "SN-00000017"
    assert len(composite_calls(sfsim)) == 2  # one aggregated call per 200 records

    mixed = outcomes_of([ref(17, Operation.DELETE), ref(999, Operation.DELETE), ref(998),
                         ref(18)], sources, lambda: sf_client)

    assert mixed[0] == mixed[1] == mixed[3] == EventOutcome(True)
    assert (mixed[2].done, mixed[2].code) == (False, "SourceRowMissing")
    assert mixed[2].message.startswith("upsert: ") and "998" in mixed[2].message
    remaining = {record["External_Id__c"] for record in sfsim.records("Asset")}
    assert "ASSET-17" not in remaining and len(remaining) == 249


def test_a_source_or_salesforce_failing_as_a_whole_fails_each_event_with_its_error(
        sqlite_assets: AssetSource, sfsim, sf_client):
    missing_view = {"Asset": asset_view_source(sqlite_assets.connection_string, "no_such_view",
                                               "sqlite", 5, 30)}
    unconfigured = {"Asset": asset_view_source(None, "v", None, 5, 30)}

    from_view = outcomes_of([ref(1), ref(2)], missing_view, lambda: sf_client)
    [from_settings] = outcomes_of([ref(1)], unconfigured, lambda: sf_client)

    def no_salesforce() -> SalesforceClient:
        raise ValueError("SALESFORCE_LOGIN_URL is not set")

    [from_login] = outcomes_of([ref(1, Operation.DELETE)], unconfigured, no_salesforce)
    sfsim.configure(error_rate_5xx=1.0)
    [from_outage] = outcomes_of([ref(1, Operation.DELETE)], unconfigured, lambda: sf_client)

    assert [(o.code, o.message.split(":")[:2]) for o in from_view] == [
        ("SourceError", ["upsert", " SOURCE_RELATION_MISSING"])] * 2
    assert (from_settings.code, from_settings.message.split(":")[1]) == (
        "SourceError", " SOURCE_NOT_CONFIGURED")
    assert (from_login.code, from_login.message) == (
        "SalesforceNotConfigured", "delete: SALESFORCE_LOGIN_URL is not set")
    assert not from_outage.done and from_outage.code.startswith("Salesforce")
    assert all("Traceback" not in (outcome.message or "")
               for outcome in (*from_view, from_settings, from_login, from_outage))


def test_a_record_that_is_no_event_fails_at_check_and_reaches_no_aggregator(sfsim, sf_client):
    unused = {"Asset": asset_view_source(None, "v", None, 5, 30)}
    records = [{"object": "Invoice", "id": "1", "operation": "upsert"},
               {"object": "Asset", "id": "x", "operation": "delete"},
               {"object": "Asset", "id": "3", "operation": "merge"}]

    run = run_instance(asset_events_job(unused, lambda: sf_client), records)

    failures = read_record_failures(run.store, InstanceFolder(JOB_NAME, "i1"))
    assert {index: (f.step, f.exception_type) for index, f in failures.items()} == {
        0: ("check", "InvalidEvent"), 1: ("check", "InvalidEvent"),
        2: ("check", "InvalidEvent")}
    assert "unknown object 'Invoice'" in failures[0].message
    assert [step["receivedRecords"] for step in run.result["steps"]] == [3, 0, 0]
    assert composite_calls(sfsim) == []


def test_outcomes_follow_how_the_instance_ended():
    failures = {1: StepFailure("upsert", "SalesforceRejected", "DUPLICATE_VALUE: taken")}

    completed = event_outcomes(3, ProcessedBatch("b1", BatchEnd.COMPLETED, 1), failures)
    stopped = event_outcomes(3, ProcessedBatch("b1", BatchEnd.STOPPED, 1), failures)
    failed = event_outcomes(2, ProcessedBatch("b1", BatchEnd.FAILED, 0), {})

    rejected = EventOutcome(False, "SalesforceRejected", "upsert: DUPLICATE_VALUE: taken")
    assert completed == [EventOutcome(True), rejected, EventOutcome(True)]
    assert stopped[1] == rejected
    assert [(o.done, o.code) for o in stopped] == [(False, "NotProcessed"),
                                                   (False, "SalesforceRejected"),
                                                   (False, "NotProcessed")]
    assert [(o.done, o.code) for o in failed] == [(False, "BatchInstanceFailed")] * 2
    assert "/api/batch-jobs/asset-events/b1" in (failed[0].message or "")


def test_the_sub_orchestration_result_says_how_the_instance_ended():
    assert processed_batch("b1", {"status": "SUCCESSFUL", "failedRecords": 2}) == \
        ProcessedBatch("b1", BatchEnd.COMPLETED, 2)
    assert processed_batch("b1", {"status": "FAILED_PROCESS_RECORDS", "failedRecords": 5}) == \
        ProcessedBatch("b1", BatchEnd.STOPPED, 5)
    assert processed_batch("b1", None).end is BatchEnd.FAILED


def test_staging_names_the_job_an_app_forgot_to_register():
    request = StageBatchRequest("drain-r-1", [ref(1)])

    with pytest.raises(LookupError, match="asset_events_job_from_settings"):
        stage_event_batch({}, request, MemoryBlobStore.empty(), None,  # type: ignore[arg-type]
                          None, datetime.now(UTC))  # type: ignore[arg-type]
