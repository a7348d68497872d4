"""sObject Collections: insert, update, delete, the 200-record limit, retrieve."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from sfsim.schema import to_18
from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, url


def test_collections_insert_update_delete(api: requests.Session) -> None:
    created = api.post(url(api, f"{V}/composite/sobjects"), json={
        "allOrNone": False,
        "records": [{"attributes": {"type": "Account"}, "Name": "X"},
                    {"attributes": {"type": "Contact"}, "LastName": "Y"}],
    }).json()
    assert [r["success"] for r in created] == [True, True]
    ids = [r["id"] for r in created]
    updated = api.patch(url(api, f"{V}/composite/sobjects"), json={
        "records": [{"attributes": {"type": "Account"}, "Id": ids[0], "Name": "X2"}]}).json()
    assert updated[0]["success"] is True
    deleted = api.delete(url(api, f"{V}/composite/sobjects"), params={"ids": ",".join(ids)})
    assert [r["success"] for r in deleted.json()] == [True, True]
    too_many = api.patch(url(api, f"{V}/composite/sobjects/Account/External_Id__c"), json={
        "records": [{"Name": "n", "External_Id__c": str(i)} for i in range(201)]})
    assert (too_many.status_code, too_many.json()[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")


def test_collections_retrieve_by_ids(api: requests.Session, sfsim: SimulatorHandle) -> None:
    ids = sfsim.insert_records("Account", [{"Name": "First"}, {"Name": "Second", "Phone": "2"}])
    missing = to_18("001000000000099")
    got = api.get(url(api, f"{V}/composite/sobjects/Account"),
                  params={"ids": f"{ids[1]},{missing},{ids[0]}", "fields": "Id,Name,Phone"})
    assert got.status_code == 200
    assert [r and (r["Id"], r["Name"], r["Phone"]) for r in got.json()] == [
        (ids[1], "Second", "2"), None, (ids[0], "First", None)
    ]
    posted = api.post(url(api, f"{V}/composite/sobjects/Account"),
                      json={"ids": ids, "fields": ["Name"]}).json()
    assert [r["Name"] for r in posted] == ["First", "Second"]
    assert posted[0]["attributes"]["type"] == "Account"
    bad = api.post(url(api, f"{V}/composite/sobjects/Account"),
                   json={"ids": ids, "fields": ["Nope"]})
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "INVALID_FIELD")


def test_collections_upsert_refuses_an_external_id_named_twice_in_one_call(
        api: requests.Session, sfsim: SimulatorHandle) -> None:
    answer = api.patch(url(api, f"{V}/composite/sobjects/Account/External_Id__c"), json={
        "records": [{"Name": "old", "External_Id__c": "A-1"},
                    {"Name": "other", "External_Id__c": "A-2"},
                    {"Name": "new", "External_Id__c": "a-1"}]}).json()

    assert [r["success"] for r in answer] == [False, True, False]
    assert {r["errors"][0]["statusCode"] for r in (answer[0], answer[2])} == {"DUPLICATE_VALUE"}
    assert [r["External_Id__c"] for r in sfsim.records("Account")
            if r.get("External_Id__c")] == ["A-2"]


def test_concurrent_upserts_creating_one_external_id_fail_all_but_the_first_to_end(
        api: requests.Session, sfsim: SimulatorHandle) -> None:
    """Salesforce's upsert race: calls under way together all find the external id new;
    the first to end creates the record, the others fail it with DUPLICATE_VALUE."""
    sfsim.configure(collection_call_seconds=0.5, seed=7)
    start = threading.Barrier(8)

    def upsert(name: str) -> dict[str, Any]:
        start.wait()
        return api.patch(url(api, f"{V}/composite/sobjects/Account/External_Id__c"), json={
            "records": [{"Name": name, "External_Id__c": "RACE-1"}]}).json()[0]

    with ThreadPoolExecutor(8) as calls:
        answers = list(calls.map(upsert, [f"version {n}" for n in range(8)]))

    stored = [r for r in sfsim.records("Account") if r.get("External_Id__c") == "RACE-1"]
    assert len(stored) == 1
    created = [a for a in answers if a["success"]]
    refused = [a["errors"][0] for a in answers if not a["success"]]
    assert created and refused and len(created) + len(refused) == 8
    assert {error["statusCode"] for error in refused} == {"DUPLICATE_VALUE"}
    assert all(stored[0]["Id"] in error["message"] for error in refused)


def test_collections_upsert_converts_and_refuses_values_by_field_type(
        api: requests.Session, sfsim: SimulatorHandle) -> None:
    sfsim.define_object("Gauge__c", {"key_prefix": "a07", "fields": [
        {"name": "Code__c", "external_id": True, "length": 20},
        {"name": "Label__c", "length": 5}, {"name": "Mail__c", "type": "email"},
        {"name": "On__c", "type": "boolean"}, {"name": "Count__c", "type": "int"},
        {"name": "Level__c", "type": "double"}, {"name": "Day__c", "type": "date"},
        {"name": "At__c", "type": "datetime"}, {"name": "Kind__c", "type": "picklist"},
        {"name": "Parent__c", "type": "reference", "reference_to": "Account"},
    ]})
    values: list[dict[str, Any]] = [
        {"Label__c": 12, "On__c": "Yes", "Count__c": "7", "Level__c": 2, "Kind__c": True,
         "Day__c": "2024-02-29T10:00:00Z", "At__c": "2024-02-29T10:00:00+02:00"},
        {"label__c": "abc", "Mail__c": None, "On__c": False, "Count__c": 3.0, "At__c": None},
        {"Label__c": "toolong"}, {"Mail__c": "no-at-sign"}, {"On__c": "maybe"},
        {"Count__c": 1.5}, {"Count__c": True}, {"Level__c": "x"}, {"Day__c": "2024-13-01"},
        {"At__c": "noon"}, {"Parent__c": "nope"}, {"Parent__c": to_18("001000000000099")},
        {"CreatedDate": "2024-01-01T00:00:00Z"}, {"Nope__c": 1},
    ]
    answer = api.patch(url(api, f"{V}/composite/sobjects/Gauge__c/Code__c"), json={
        "records": [{"Code__c": f"G{i}", **value} for i, value in enumerate(values)]}).json()

    assert [r["errors"][0]["statusCode"] if r["errors"] else r["success"] for r in answer] == [
        True, True, "STRING_TOO_LONG", "INVALID_EMAIL_ADDRESS",
        "INVALID_TYPE_ON_FIELD_IN_RECORD", "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_TYPE_ON_FIELD_IN_RECORD", "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_TYPE_ON_FIELD_IN_RECORD", "INVALID_TYPE_ON_FIELD_IN_RECORD", "MALFORMED_ID",
        "INVALID_CROSS_REFERENCE_KEY", "INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_FIELD",
    ]
    assert answer[2]["errors"][0]["message"] == (
        "Label__c: data value too large: toolong (max length=5)")
    assert answer[5]["errors"][0]["message"] == "Count__c: value not of required type: 1.5"
    stored = {record["Code__c"]: record for record in sfsim.records("Gauge__c")}
    assert set(stored) == {"G0", "G1"}
    fields = ("Label__c", "On__c", "Count__c", "Level__c", "Kind__c", "Day__c", "At__c")
    assert [stored["G0"][name] for name in fields] == [
        "12", True, 7, 2.0, "True", "2024-02-29", "2024-02-29T08:00:00.000+0000"]
    assert [stored["G1"][name] for name in ("Label__c", "Mail__c", "On__c", "Count__c",
                                            "At__c")] == ["abc", None, False, 3, None]
