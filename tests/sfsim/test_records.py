"""Single records over REST (CRUD, ids) and getUpdated / getDeleted."""

from __future__ import annotations

import requests

from sfsim.schema import id_checksum, looks_like_id, to_18
from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, url


def test_single_record_crud(api: requests.Session) -> None:
    created = api.post(url(api, f"{V}/sobjects/Account"), json={"Name": "One"})
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert looks_like_id(record_id) and record_id.startswith("001")
    assert api.patch(url(api, f"{V}/sobjects/Account/{record_id}"),
                     json={"Phone": "555"}).status_code == 204
    record = api.get(url(api, f"{V}/sobjects/Account/{record_id[:15]}")).json()
    assert (record["Name"], record["Phone"]) == ("One", "555")
    assert record["attributes"]["type"] == "Account"
    missing = api.post(url(api, f"{V}/sobjects/Account"), json={"Phone": "1"})
    assert missing.status_code == 400
    assert missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert missing.json()[0]["fields"] == ["Name"]
    assert api.delete(url(api, f"{V}/sobjects/Account/{record_id}")).status_code == 204
    assert api.get(url(api, f"{V}/sobjects/Account/{record_id}")).status_code == 404


def test_record_ids_carry_the_case_checksum() -> None:
    assert to_18("001000000000001") == "001000000000001AAA"
    assert id_checksum("001A0000006Vm9r") == "IAC"  # an id from Salesforce's docs
    assert not looks_like_id("001000000000001ZZZ")


def test_get_updated_and_get_deleted(api: requests.Session, sfsim: SimulatorHandle) -> None:
    import datetime as dt

    kept, gone = sfsim.insert_records("Account", [{"Name": "Kept"}, {"Name": "Gone"}])
    assert api.delete(url(api, f"{V}/sobjects/Account/{gone}")).status_code == 204
    now = dt.datetime.now(dt.UTC)
    window = {"start": (now - dt.timedelta(minutes=5)).isoformat(),
              "end": (now + dt.timedelta(minutes=2)).isoformat()}
    updated = api.get(url(api, f"{V}/sobjects/Account/updated/"), params=window).json()
    assert updated["ids"] == [kept]
    assert updated["latestDateCovered"].endswith(":00.000+0000")
    deleted = api.get(url(api, f"{V}/sobjects/Account/deleted/"), params=window).json()
    assert [d["id"] for d in deleted["deletedRecords"]] == [gone]
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    before = {"start": (now - dt.timedelta(days=2)).isoformat(),
              "end": (now - dt.timedelta(days=1)).isoformat()}
    assert api.get(url(api, f"{V}/sobjects/Account/updated/"), params=before).json()["ids"] == []
    backwards = api.get(url(api, f"{V}/sobjects/Account/updated/"),
                        params={"start": window["end"], "end": window["start"]})
    assert (backwards.status_code, backwards.json()[0]["errorCode"]) == (
        400, "INVALID_REPLICATION_DATE")


def test_the_org_has_its_user_and_organization(api: requests.Session,
                                               sfsim: SimulatorHandle) -> None:
    """Read by clients right after a login: the CLI reads the user named by userinfo and
    queries the Organization."""
    info = api.get(url(api, "/services/oauth2/userinfo")).json()
    user = api.get(url(api, f"/services/data/v51.0/sobjects/User/{info['user_id']}"))
    organization = api.get(url(api, f"{V}/query"), params={
        "q": "SELECT Name, InstanceName, IsSandbox, TrialExpirationDate, NamespacePrefix, "
             "OrganizationType FROM Organization"}).json()["records"]

    assert user.status_code == 200
    assert (user.json()["Username"], user.json()["IsActive"]) == (sfsim.username, True)
    assert [(o["IsSandbox"], o["TrialExpirationDate"]) for o in organization] == [
        (False, None)]
    assert api.get(url(api, f"{V}/sobjects/Organization/{info['organization_id']}")
                   ).status_code == 200


def test_the_user_record_survives_a_reset_and_follows_the_username(
    sfsim: SimulatorHandle,
) -> None:
    sfsim.reset()
    assert [u["Username"] for u in sfsim.records("User")] == [sfsim.username]
    sfsim.configure(username="someone@sfsim.example")
    assert [u["Username"] for u in sfsim.records("User")] == ["someone@sfsim.example"]
    sfsim.reset()
    assert [u["Username"] for u in sfsim.records("User")] == [sfsim.username]
