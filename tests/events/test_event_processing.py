"""The seam on real services: the asset changes view in SQLite -> the simulator's Asset."""

from __future__ import annotations

from shared.events.messages import EventOutcome, EventRef
from shared.events.processing import apply_events, asset_view_source
from shared.events.validation import Operation
from tests.sync.sources import BASE, AssetSource


def ref(record_id: int, operation: Operation = Operation.UPSERT) -> EventRef:
    return EventRef("Asset", str(record_id), operation, None, 0, "etag")


def test_upserts_read_the_view_row_and_deletes_remove_the_asset(sqlite_assets: AssetSource,
                                                                  sfsim, sf_client):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 251))
    sources = {"Asset": asset_view_source(sqlite_assets.connection_string, sqlite_assets.view,
                                          "sqlite", 5, 30)}
    upserts = [ref(asset_id) for asset_id in range(1, 251)]

    assert apply_events(upserts, sources, lambda: sf_client) == [EventOutcome(True)] * 250
    stored = {record["External_Id__c"]: record for record in sfsim.records("Asset")}
    assert len(stored) == 250
    assert stored["ASSET-17"]["SerialNumber"] == "SN-00000017"
    calls = [entry for entry in sfsim.requests_log() if "composite/sobjects" in entry["path"]]
    assert len(calls) == 2  # one aggregated call per 200 records

    outcomes = apply_events([ref(17, Operation.DELETE), ref(999, Operation.DELETE),
                             ref(998), ref(18)], sources, lambda: sf_client)

    assert outcomes[0] == outcomes[1] == outcomes[3] == EventOutcome(True)
    assert (outcomes[2].done, outcomes[2].code) == (False, "SOURCE_ROW_MISSING")
    remaining = {record["External_Id__c"] for record in sfsim.records("Asset")}
    assert "ASSET-17" not in remaining and len(remaining) == 249


def test_a_source_or_salesforce_failing_as_a_whole_fails_each_event_with_a_code(
        sqlite_assets: AssetSource, sfsim, sf_client):
    missing_view = {"Asset": asset_view_source(sqlite_assets.connection_string, "no_such_view",
                                               "sqlite", 5, 30)}
    unconfigured = {"Asset": asset_view_source(None, "v", None, 5, 30)}

    [from_view] = apply_events([ref(1)], missing_view, lambda: sf_client)
    [from_settings] = apply_events([ref(1)], unconfigured, lambda: sf_client)

    def no_salesforce():
        raise ValueError("SALESFORCE_LOGIN_URL is not set")

    [from_login] = apply_events([ref(1, Operation.DELETE)], unconfigured, no_salesforce)
    sfsim.configure(error_rate_5xx=1.0)
    [from_outage] = apply_events([ref(1, Operation.DELETE)], unconfigured, lambda: sf_client)

    assert (from_view.code, from_settings.code) == ("SOURCE_RELATION_MISSING",
                                                    "SOURCE_NOT_CONFIGURED")
    assert from_login.code == "SALESFORCE_NOT_CONFIGURED"
    assert not from_outage.done and from_outage.code
    assert all("Traceback" not in (outcome.message or "")
               for outcome in (from_view, from_settings, from_login, from_outage))
