"""SOQL over REST: filters, relationships, COUNT(), errors, nextRecordsUrl pages."""

from __future__ import annotations

import requests

from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, url


def test_query(api: requests.Session, sfsim: SimulatorHandle) -> None:
    (parent,) = sfsim.insert_records("Account", [{"Name": "Parent Co",
                                                  "External_Id__c": "P"}])
    sfsim.insert_records("Contact", [
        {"LastName": f"L{i}", "Email": f"c{i}@example.com", "AccountId": parent if i % 2 else None}
        for i in range(5)
    ])

    def query(soql: str) -> dict:
        response = api.get(url(api, f"{V}/query"), params={"q": soql})
        assert response.status_code == 200, response.text
        return response.json()

    body = query("SELECT Id, LastName, Account.Name FROM Contact WHERE AccountId != null "
                 "ORDER BY LastName DESC")
    assert [r["LastName"] for r in body["records"]] == ["L3", "L1"]
    assert body["records"][0]["Account"]["Name"] == "Parent Co"
    assert body["totalSize"] == 2 and body["done"] is True
    assert query("SELECT COUNT() FROM Contact WHERE LastName IN ('L0', 'l4')")["totalSize"] == 2
    assert [r["LastName"] for r in query(
        "SELECT LastName FROM Contact WHERE (LastName = 'L0' OR Email LIKE 'c4%') "
        "AND NOT LastName = 'L4' LIMIT 5")["records"]] == ["L0"]
    bad = api.get(url(api, f"{V}/query"), params={"q": "SELECT Nope FROM Contact"})
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "INVALID_FIELD")
    bad = api.get(url(api, f"{V}/query"), params={"q": "SELECT Id FROM Nothing"})
    assert bad.json()[0]["errorCode"] == "INVALID_TYPE"


def test_query_pages_through_next_records_url(api: requests.Session,
                                              sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": f"A{i}"} for i in range(2500)])
    first = api.get(url(api, f"{V}/query"), params={"q": "SELECT Id FROM Account"}).json()
    assert (len(first["records"]), first["done"]) == (2000, False)
    second = api.get(url(api, first["nextRecordsUrl"])).json()
    assert (len(second["records"]), second["done"]) == (500, True)
    ids = {r["Id"] for r in first["records"] + second["records"]}
    assert len(ids) == 2500


def test_columns_describe_what_a_query_returns(api: requests.Session) -> None:
    """`?columns=true`, what the Salesforce CLI reads before it prints a query's table."""
    columns = api.get(url(api, f"{V}/query"), params={
        "q": "SELECT Id, LastName, Account.Name, Account.Parent.Name FROM Contact",
        "columns": "true"}).json()

    assert (columns["entityName"], columns["keyPrefix"], columns["idSelected"]) == (
        "Contact", "003", True)
    top = {c["columnName"]: c for c in columns["columnMetadata"]}
    assert list(top) == ["Id", "LastName", "Account"]
    assert top["LastName"]["joinColumns"] == [] and top["LastName"]["textType"] is True
    account = top["Account"]["joinColumns"]
    assert [c["columnName"] for c in account] == ["Name", "Parent"]
    assert [c["columnName"] for c in account[1]["joinColumns"]] == ["Name"]
    counted = api.get(url(api, f"{V}/query"), params={
        "q": "SELECT COUNT() FROM Contact", "columns": "true"}).json()
    assert counted["columnMetadata"] == []
