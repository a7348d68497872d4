"""simple-salesforce, unpatched, against the simulator (it only speaks https: TLS instance).

The session gets its token from the simulator's OAuth endpoint and trusts the simulator's
self-signed certificate through REQUESTS_CA_BUNDLE: ordinary client configuration.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce

from sfsim.schema import to_18
from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import token_answer


@pytest.fixture
def sf(sfsim_tls: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Salesforce:
    # How a user trusts a private certificate authority with requests.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sfsim_tls.ca_file))
    token = token_answer(sfsim_tls)
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                      session=requests.Session(), version="62.0")


def test_bulk2_upsert_insert_and_results(sf: Salesforce, sfsim_tls: SimulatorHandle,
                                         tmp_path: Path) -> None:
    accounts = [{"External_Id__c": f"SS-{i}", "Name": f"Simple {i}, \"quoted\""}
                for i in range(25)]
    upserted = sf.bulk2.Account.upsert(records=accounts, external_id_field="External_Id__c",
                                       wait=0.05)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in upserted] == [(25, 0)]

    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["LastName", "Email", "Account.External_Id__c"])
        writer.writerow(["Ünïcode", "u@example.com", "SS-1"])
        writer.writerow(["", "missing@example.com", "SS-2"])
        writer.writerow(["Lost", "lost@example.com", "SS-404"])
    inserted = sf.bulk2.Contact.insert(csv_file=str(contacts), wait=0.05)
    (result,) = inserted
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (3, 2)

    successes = list(csv.DictReader(io.StringIO(
        sf.bulk2.Contact.get_successful_records(result["job_id"]))))
    failures = list(csv.DictReader(io.StringIO(
        sf.bulk2.Contact.get_failed_records(result["job_id"]))))
    unprocessed = sf.bulk2.Contact.get_unprocessed_records(result["job_id"])
    assert [(r["LastName"], r["sf__Created"]) for r in successes] == [("Ünïcode", "true")]
    assert sorted(r["sf__Error"].split(":")[0] for r in failures) == [
        "INVALID_FIELD", "REQUIRED_FIELD_MISSING",
    ]
    assert unprocessed.strip() == '"LastName","Email","Account.External_Id__c"'

    account_id = next(r["Id"] for r in sfsim_tls.records("Account")
                      if r["External_Id__c"] == "SS-1")
    (contact,) = sfsim_tls.records("Contact")
    assert contact["AccountId"] == account_id


def test_rest_crud_and_query(sf: Salesforce, sfsim_tls: SimulatorHandle) -> None:
    created = sf.Account.create({"Name": "Rest One", "External_Id__c": "R-1"})
    assert created["success"] is True
    assert sf.Account.upsert("External_Id__c/R-2", {"Name": "Rest Two"}) == 201
    # API 46.0 and later answer an upsert that updated with 200 (204 before).
    assert sf.Account.upsert("External_Id__c/R-2", {"Name": "Rest Two bis"}) == 200
    assert sf.Account.get(created["id"])["Name"] == "Rest One"
    assert sf.Account.get_by_custom_id("External_Id__c", "R-2")["Name"] == "Rest Two bis"
    sf.Contact.create({"LastName": "Child", "AccountId": created["id"]})

    rows = sf.query("SELECT Id, Name FROM Account WHERE Name LIKE 'Rest%' ORDER BY Name DESC")
    assert [r["Name"] for r in rows["records"]] == ["Rest Two bis", "Rest One"]
    joined = sf.query_all("SELECT LastName, Account.Name FROM Contact WHERE Account.Name = "
                          "'rest one'")
    assert joined["records"][0]["Account"]["Name"] == "Rest One"
    describe = sf.Account.describe()
    assert {f["name"] for f in describe["fields"] if f["externalId"]} == {"External_Id__c"}
    sf.Account.delete(created["id"])
    assert {r["Name"] for r in sfsim_tls.records("Account")} == {"Rest Two bis"}
    assert sf.limits()["DailyApiRequests"]["Max"] > 0


def test_bulk2_query_pages_through_results(sf: Salesforce, sfsim_tls: SimulatorHandle) -> None:
    parent = sfsim_tls.insert_records("Account", [{"Name": "Parent"}])[0]
    sfsim_tls.insert_records(
        "Contact", [{"LastName": f"Q{i:02}", "AccountId": parent} for i in range(25)]
    )
    pages = list(sf.bulk2.Contact.query(
        "SELECT Id, LastName, Account.Name FROM Contact WHERE LastName LIKE 'Q%'",
        max_records=10, wait=0.05,
    ))
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(pages) == 3
    assert sorted(r["LastName"] for r in rows) == [f"Q{i:02}" for i in range(25)]
    assert {r["Account.Name"] for r in rows} == {"Parent"}


def test_bulk2_update_delete_and_hard_delete(sf: Salesforce, sfsim_tls: SimulatorHandle) -> None:
    keep, soft, hard = sfsim_tls.insert_records(
        "Account", [{"Name": "Keep"}, {"Name": "Soft"}, {"Name": "Hard"}]
    )
    (updated,) = sf.bulk2.Account.update(
        records=[{"Id": keep, "Name": "Kept"}, {"Id": to_18("001000000000099"), "Name": "?"}],
        wait=0.05,
    )
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (2, 1)
    failed = list(csv.DictReader(io.StringIO(
        sf.bulk2.Account.get_failed_records(updated["job_id"]))))
    assert failed[0]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY:")
    (deleted,) = sf.bulk2.Account.delete(records=[{"Id": soft}], wait=0.05)
    (hard_deleted,) = sf.bulk2.Account.hard_delete(records=[{"Id": hard}], wait=0.05)
    assert deleted["numberRecordsFailed"] == hard_deleted["numberRecordsFailed"] == 0
    assert [r["Name"] for r in sfsim_tls.records("Account")] == ["Kept"]


def test_query_all_iter_updated_deleted_and_restful(
    sf: Salesforce, sfsim_tls: SimulatorHandle
) -> None:
    import datetime as dt

    ids = sfsim_tls.insert_records("Account", [{"Name": f"I{i:04}"} for i in range(2100)])
    names = [r["Name"] for r in sf.query_all_iter("SELECT Name FROM Account ORDER BY Name")]
    assert names == [f"I{i:04}" for i in range(2100)]
    sf.Account.delete(ids[0])
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=2)
    assert len(sf.Account.updated(start, end)["ids"]) == 2099
    assert [d["id"] for d in sf.Account.deleted(start, end)["deletedRecords"]] == [ids[0]]
    assert sf.restful("sobjects/Account/describe")["name"] == "Account"
    assert sf.api_usage["api-usage"].total > 0  # parsed from the Sforce-Limit-Info header


def test_soap_login_answer_and_fault_read_by_simple_salesforce(
    sfsim_tls: SimulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Salesforce(username, password, security_token) posts to https://{domain}.salesforce.com,
    # a host name the simulator cannot answer for; its SOAP parser is called directly.
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed
    from simple_salesforce.login import soap_login

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sfsim_tls.ca_file))
    envelope = (
        '<?xml version="1.0" encoding="utf-8" ?><env:Envelope xmlns:env='
        '"http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1='
        '"urn:partner.soap.sforce.com"><n1:username>{}</n1:username><n1:password>{}'
        "</n1:password></n1:login></env:Body></env:Envelope>"
    )
    soap_url = f"{sfsim_tls.base_url}/services/Soap/u/62.0"
    headers = {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"}
    session_id, instance = soap_login(
        soap_url, envelope.format(sfsim_tls.username, "sfsim-passwordTOKEN"), headers, None
    )
    sf = Salesforce(session_id=session_id, instance=instance, version="62.0")
    assert sf.limits()["DailyApiRequests"]["Max"] > 0
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        soap_login(soap_url, envelope.format(sfsim_tls.username, "wrong"), headers, None)
    assert caught.value.code == "INVALID_LOGIN"
    assert caught.value.auth_message.startswith("Invalid username, password")


def test_is_sandbox_and_the_user_record(sf: Salesforce, sfsim_tls: SimulatorHandle) -> None:
    """The org's own Organization and User records, as simple-salesforce reads them."""
    user_id = sf.query("SELECT Id FROM User")["records"][0]["Id"]

    assert sf.is_sandbox() is False
    assert sf.User.get(user_id)["Username"] == sfsim_tls.username
    assert sf.query("SELECT Name, OrganizationType FROM Organization")["records"][0][
        "OrganizationType"] == "Developer Edition"
