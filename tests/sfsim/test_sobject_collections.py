"""sObject Collections: insert, update, delete, the 200-record limit, retrieve."""

from __future__ import annotations

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
