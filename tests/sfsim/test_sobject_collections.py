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
