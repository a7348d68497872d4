"""The simulator's HTTP API as any client sees it: shapes, codes, limits, admin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sfsim.schema import id_checksum, looks_like_id, to_18
from sfsim.testing import SimulatorHandle, free_port
from shared.salesforce import SalesforceClient, SalesforceCredentials

V = "/services/data/v62.0"


@pytest.fixture
def api(sfsim: SimulatorHandle) -> requests.Session:
    session = requests.Session()
    token = session.post(
        f"{sfsim.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": sfsim.client_id,
              "client_secret": sfsim.client_secret},
        timeout=10,
    ).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    session.base = sfsim.base_url  # type: ignore[attr-defined]
    return session


def url(api: requests.Session, path: str) -> str:
    return api.base + path  # type: ignore[attr-defined]


def test_token_response_has_salesforces_fields(sfsim: SimulatorHandle) -> None:
    body = requests.post(
        f"{sfsim.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": sfsim.client_id,
              "client_secret": sfsim.client_secret},
        timeout=10,
    ).json()
    assert {"access_token", "instance_url", "token_type", "issued_at", "id", "signature"} <= set(
        body
    )
    assert body["instance_url"] == sfsim.base_url
    assert body["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"},
         "invalid_client"),
    ],
)
def test_oauth_errors(sfsim: SimulatorHandle, form: dict, error: str) -> None:
    response = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_missing_or_bad_token_is_401_invalid_session(api: requests.Session) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = requests.get(url(api, f"{V}/sobjects"), headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_tokens_expire_after_their_lifetime(sfsim: SimulatorHandle, api: requests.Session) -> None:
    # Long enough for the first call to land in time on a loaded machine.
    sfsim.configure(token_ttl_seconds=2.0)
    issued = time.monotonic()
    fresh = requests.post(
        f"{sfsim.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": sfsim.client_id,
              "client_secret": sfsim.client_secret},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {fresh}"}
    assert requests.get(url(api, f"{V}/limits"), headers=headers, timeout=10).status_code == 200
    while (status := requests.get(url(api, f"{V}/limits"), headers=headers,
                                  timeout=10).status_code) == 200:
        assert time.monotonic() - issued < 15, "the token outlived its 2 s lifetime"
        time.sleep(0.1)
    assert status == 401
    assert time.monotonic() - issued >= 2.0  # not before its lifetime either


def test_versions_resources_and_describe(api: requests.Session) -> None:
    versions = requests.get(url(api, "/services/data/"), timeout=10).json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert "jobs" in api.get(url(api, V)).json()
    names = {o["name"] for o in api.get(url(api, f"{V}/sobjects")).json()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "OpportunityLineItem", "Asset"} <= names
    fields = {f["name"]: f for f in api.get(url(api, f"{V}/sobjects/Contact/describe")).json()[
        "fields"]}
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["LastName"]["nillable"] is False
    assert fields["External_Id__c"]["externalId"] is True
    assert api.get(url(api, "/services/data/v19.0/sobjects")).status_code == 404


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


def test_ingest_job_fields_and_raw_endpoints(api: requests.Session) -> None:
    created = api.post(url(api, f"{V}/jobs/ingest"), json={
        "object": "Account", "operation": "insert", "contentType": "CSV",
        "lineEnding": "LF", "columnDelimiter": "COMMA"}).json()
    assert created["state"] == "Open"
    assert created["contentUrl"] == f"services/data/v62.0/jobs/ingest/{created['id']}/batches"
    assert created["apiVersion"] == 62.0 and created["concurrencyMode"] == "Parallel"
    batches = url(api, "/" + created["contentUrl"])
    wrong_type = api.put(batches, data=b"Name\nx\n", headers={"Content-Type": "text/plain"})
    assert wrong_type.json()[0]["errorCode"] == "INVALIDCONTENTTYPE"
    put = api.put(batches, data=b"Name\nx\n", headers={"Content-Type": "text/csv"})
    assert (put.status_code, put.content) == (201, b"")
    info = api.get(url(api, f"{V}/jobs/ingest/{created['id']}")).json()
    for name in ("jobType", "retries", "totalProcessingTime", "apiActiveProcessingTime",
                 "apexProcessingTime", "numberRecordsProcessed", "numberRecordsFailed"):
        assert name in info
    bad_state = api.patch(url(api, f"{V}/jobs/ingest/{created['id']}"), json={"state": "Open"})
    assert bad_state.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    listing = api.get(url(api, f"{V}/jobs/ingest")).json()
    assert listing["done"] is True and listing["records"][0]["id"] == created["id"]
    assert api.get(url(api, f"{V}/jobs/ingest/750000000000000AAA")).status_code == 404


def test_limits_and_usage_header(api: requests.Session, sfsim: SimulatorHandle) -> None:
    sfsim.configure(daily_api_limit=50)
    response = api.get(url(api, f"{V}/limits"))
    limits = response.json()["DailyApiRequests"]
    assert limits == {"Max": 50, "Remaining": 49}
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/50"


def test_admin_reset_restores_settings_and_empties_the_org(sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": "gone"}])
    sfsim.configure(error_rate_5xx=1.0, job_delay_seconds=9)
    sfsim.reset()
    assert sfsim.records("Account") == []
    config = sfsim.config()
    assert config["error_rate_5xx"] == 0.0 and config["job_delay_seconds"] == 0.02
    assert config["client_secret"] == "***"
    with pytest.raises(RuntimeError, match="unknown setting"):
        sfsim.configure(nonsense=1)
    with pytest.raises(RuntimeError, match="fraction"):
        sfsim.configure(error_rate_429=3)


def test_record_ids_carry_the_case_checksum() -> None:
    assert to_18("001000000000001") == "001000000000001AAA"
    assert id_checksum("001A0000006Vm9r") == "IAC"  # an id from Salesforce's docs
    assert not looks_like_id("001000000000001ZZZ")


def test_python_m_sfsim_prints_credentials_and_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sfsim", "--port", str(port), "--job-delay", "0",
         "--jwt-keys", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        banner = [process.stdout.readline() for _ in range(6)]  # type: ignore[union-attr]
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text
        assert "sfsim-client-id" in text and "sfsim-client-secret" in text
        assert "integration@sfsim.example" in text
        config = requests.get(f"http://127.0.0.1:{port}/_sim/config", timeout=10).json()
        assert config["job_delay_seconds"] == 0.0
        assert str(tmp_path / "jwt-private-key.pem") in text
        client = SalesforceClient(SalesforceCredentials(
            f"http://127.0.0.1:{port}", "sfsim-client-id", grant="jwt_bearer",
            username="integration@sfsim.example",
            private_key_pem=(tmp_path / "jwt-private-key.pem").read_text(),
        ))
        assert client.create_ingest_job("Account", "insert").state == "Open"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_python_m_sfsim_refuses_bad_settings() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sfsim", "--port", "0"],
        env={"SFSIM_ERROR_RATE_5XX": "2", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert completed.returncode == 2
    assert "error_rate_5xx is a fraction" in completed.stderr


def test_bulk_query_job_lifecycle(api: requests.Session, sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": f"B{i}", "NumberOfEmployees": i} for i in range(5)])
    job = api.post(url(api, f"{V}/jobs/query"), json={
        "operation": "query", "query": "SELECT Name, NumberOfEmployees FROM Account "
        "WHERE NumberOfEmployees >= 2 ORDER BY Name"}).json()
    assert (job["state"], job["object"]) == ("UploadComplete", "Account")
    early = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"))
    assert early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    deadline = time.monotonic() + 10
    while api.get(url(api, f"{V}/jobs/query/{job['id']}")).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    page = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"), params={"maxRecords": 2})
    assert page.headers["Sforce-Locator"] == "2"
    assert page.headers["Sforce-NumberOfRecords"] == "2"
    assert page.text == '"Name","NumberOfEmployees"\n"B2","2"\n"B3","3"\n'
    last = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"),
                   params={"maxRecords": 2, "locator": "2"})
    assert last.headers["Sforce-Locator"] == "null"
    assert last.text.splitlines()[1:] == ['"B4","4"']
    assert api.delete(url(api, f"{V}/jobs/query/{job['id']}")).status_code == 204
    bad = api.post(url(api, f"{V}/jobs/query"), json={"query": "SELECT Nope FROM Account"})
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "API_ERROR")


SOAP_LOGIN = (
    '<?xml version="1.0" encoding="utf-8" ?><soapenv:Envelope xmlns:soapenv='
    '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
    "<soapenv:Body><urn:login><urn:username>{user}</urn:username>"
    "<urn:password>{password}</urn:password></urn:login></soapenv:Body></soapenv:Envelope>"
)


def test_soap_login_for_username_password_clients(sfsim: SimulatorHandle) -> None:
    response = requests.post(
        f"{sfsim.base_url}/services/Soap/u/62.0",
        data=SOAP_LOGIN.format(user=sfsim.username, password="sfsim-passwordSECURITYTOKEN"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert response.status_code == 200
    session_id = response.text.split("<sessionId>")[1].split("</sessionId>")[0]
    assert f"<serverUrl>{sfsim.base_url}/services/Soap/u/62.0/" in response.text
    api = requests.get(f"{sfsim.base_url}{V}/limits",
                       headers={"Authorization": f"Bearer {session_id}"}, timeout=10)
    assert api.status_code == 200
    refused = requests.post(
        f"{sfsim.base_url}/services/Soap/u/62.0",
        data=SOAP_LOGIN.format(user=sfsim.username, password="wrong"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert refused.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in refused.text


def test_oauth_password_grant(sfsim: SimulatorHandle) -> None:
    form = {"grant_type": "password", "client_id": sfsim.client_id,
            "client_secret": sfsim.client_secret, "username": sfsim.username,
            "password": "sfsim-password"}
    token = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert token.status_code == 200 and token.json()["access_token"]
    form["password"] = "nope"
    refused = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert refused.json() == {
        "error": "invalid_grant", "error_description": "authentication failure",
    }


def test_userinfo_identity_and_revoke(sfsim: SimulatorHandle, api: requests.Session) -> None:
    info = api.get(url(api, "/services/oauth2/userinfo")).json()
    assert info["preferred_username"] == sfsim.username
    identity = api.get(url(api, f"/id/{info['organization_id']}/{info['user_id']}")).json()
    assert identity["user_id"] == info["user_id"]
    token = api.headers["Authorization"].split()[1]
    assert requests.post(f"{sfsim.base_url}/services/oauth2/revoke", data={"token": token},
                         timeout=10).status_code == 200
    assert api.get(url(api, f"{V}/limits")).status_code == 401
    assert api.get(url(api, "/services/oauth2/userinfo")).status_code == 403


def test_identity_url_answers_in_salesforces_shape(sfsim: SimulatorHandle,
                                                   api: requests.Session) -> None:
    identity_url = api.get(url(api, V)).json()["identity"]
    token = api.headers["Authorization"].split()[1]
    by_header = api.get(identity_url)
    # Clients such as jsforce pass the token as a query parameter instead.
    by_parameter = requests.get(identity_url, params={"format": "json", "oauth_token": token},
                                timeout=10)
    assert by_header.status_code == by_parameter.status_code == 200
    identity = by_parameter.json()
    assert identity["id"] == identity_url
    assert identity["username"] == sfsim.username
    assert identity_url.endswith(f"/id/{identity['organization_id']}/{identity['user_id']}")
    assert identity["urls"]["rest"] == f"{sfsim.base_url}/services/data/v{{version}}/"
    refused = requests.get(identity_url, params={"oauth_token": "nope"}, timeout=10)
    assert (refused.status_code, refused.text) == (403, "Bad_OAuth_Token")


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


def test_soap_logout_ends_the_session_and_faults_carry_their_detail(
    sfsim: SimulatorHandle,
) -> None:
    soap_url = f"{sfsim.base_url}/services/Soap/u/62.0"
    login = requests.post(
        soap_url, data=SOAP_LOGIN.format(user=sfsim.username, password="sfsim-password"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    session_id = login.text.split("<sessionId>")[1].split("</sessionId>")[0]
    logout = (
        '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header>'
        '<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{}</sessionId>'
        '</SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/>'
        "</se:Body></se:Envelope>"
    )
    done = requests.post(soap_url, data=logout.format(session_id), timeout=10,
                         headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert done.status_code == 200 and "<logoutResponse/>" in done.text
    api = requests.get(f"{sfsim.base_url}{V}/limits",
                       headers={"Authorization": f"Bearer {session_id}"}, timeout=10)
    assert api.status_code == 401
    again = requests.post(soap_url, data=logout.format(session_id), timeout=10,
                          headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert again.status_code == 500
    assert "<sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode>" in again.text
    refused = requests.post(
        soap_url, data=SOAP_LOGIN.format(user=sfsim.username, password="wrong"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert '<sf:LoginFault xsi:type="sf:LoginFault">' in refused.text
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in refused.text
