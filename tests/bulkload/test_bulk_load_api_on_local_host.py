"""The loads API on the local host against the simulator: what a caller of
/api/bulk-loads* gets (never the system key), listing, results, retries, validation only,
and the regressions of issue 16 (a crash after the claim, invalid text, #N/A, formulas);
a started load whose claim could not be marked."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time

import requests
from azure.storage.blob import BlobServiceClient

from orchestrators.bulk_load.endpoints import CLAIMED, MARKING_CLAIM
from shared.crash_points import FAULT_SETTING
from shared.storage.leased_claim import read_claim
from tests.bulkload.test_bulk_load_on_local_host import SEED_LOAD


def rows(response: requests.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def post_to(host, path: str, body=None) -> requests.Response:
    return requests.post(host.host.url(path), params={"code": host.host.function_key},
                         data=json.dumps(body).encode() if body is not None else b"",
                         timeout=60)


def test_no_answer_of_the_loads_api_hands_out_a_durable_key(start_bulk_host, sfsim):
    host = start_bulk_host()
    started = host.post(SEED_LOAD)
    host.wait_for_end("seed-example")
    sfsim.configure(job_delay_seconds=1.0)
    running = host.post({**SEED_LOAD, "loadId": "still-running"})
    answers = [started, host.post(SEED_LOAD), host.get("/api/bulk-loads"),
               host.get("/api/bulk-loads/seed-example"),
               host.get("/api/bulk-loads/seed-example/results"),
               host.get("/api/bulk-loads/seed-example/failures"),
               post_to(host, "/api/bulk-loads/seed-example/retry-failures"),
               post_to(host, "/api/bulk-loads/seed-example/cancel"),
               post_to(host, "/api/bulk-loads?validateOnly=true", SEED_LOAD),
               host.get("/api/bulk-loads/no-such-load"),
               running, host.get("/api/bulk-loads/still-running"),
               host.get("/api/bulk-loads/still-running/failures")]
    host.wait_for_end("still-running")

    assert [answer.status_code for answer in answers] == [
        202, 200, 200, 200, 200, 200, 409, 409, 200, 404, 202, 200, 409]
    for answer in answers:
        text = answer.text + json.dumps(dict(answer.headers))
        assert "code=" not in text and host.host.master_key not in text, text
        assert "runtime/webhooks" not in text, text
    assert started.status_code == 202
    assert set(started.json()) >= {"statusUrl", "resultsUrl", "failuresUrl", "cancelUrl",
                                   "retryFailuresUrl"}


def test_recent_loads_are_listed_newest_first_filtered_and_paged(start_bulk_host, sfsim):
    host = start_bulk_host()
    for number in range(3):
        body = json.loads(json.dumps(SEED_LOAD))
        body["loadId"] = f"list-{number}"
        assert host.post(body).status_code in (200, 202)
        host.wait_for_end(f"list-{number}")
    sfsim.configure(job_delay_seconds=3600)
    running = json.loads(json.dumps(SEED_LOAD))
    running["loadId"] = "list-running"
    assert host.post(running).status_code == 202

    first = host.get("/api/bulk-loads", limit="2")
    second = host.get("/api/bulk-loads", limit="2", after=first.json()["next"])
    busy = host.get("/api/bulk-loads", status="Running,Pending")

    assert [load["loadId"] for load in first.json()["loads"]] == ["list-running", "list-2"]
    assert [load["loadId"] for load in second.json()["loads"]] == ["list-1", "list-0"]
    assert second.json()["next"] is None
    assert [load["loadId"] for load in busy.json()["loads"]] == ["list-running"]
    completed = first.json()["loads"][1]
    assert (completed["outcome"], completed["percent"]) == ("succeeded", 100.0)
    assert [level["percent"] for level in completed["levels"]] == [100.0, 100.0]
    bad = host.get("/api/bulk-loads", status="Sleeping")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_QUERY")
    # While it runs: the level in progress, its share done, nothing claimed past it.
    deadline = time.monotonic() + 60
    while (view := host.get("/api/bulk-loads/list-running").json())["phase"] != "waiting":
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["levels"][0]["state"] == "waiting"
    assert view["levels"][1]["percent"] == 0.0 and view["percent"] < 100.0
    assert view["cancelUrl"] == "/api/bulk-loads/list-running/cancel"


def test_a_list_limit_that_is_not_ascii_digits_is_refused_at_400(start_bulk_host):
    # Found by the API fuzzing: '²' passes str.isdigit() and int() refuses it (a 500).
    host = start_bulk_host()

    answers = [host.get("/api/bulk-loads", limit=limit) for limit in ("²", "٣", "1e1")]

    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == \
        [(400, "INVALID_QUERY")] * 3


def test_validate_only_answers_the_plan_and_stages_nothing(start_bulk_host, sfsim):
    host = start_bulk_host(BULK_LOAD_UPLOAD_LIMIT_BYTES="120")
    answer = requests.post(host.host.url("/api/bulk-loads"), json=SEED_LOAD,
                           params={"code": host.host.function_key, "validateOnly": "true"},
                           timeout=60)

    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert [(level["level"], level["records"]) for level in plan["levels"]] == [
        ("accounts", 2), ("contacts", 3)]
    assert all(level["jobParts"] >= 1 and level["csvBytes"] > 0 for level in plan["levels"])
    assert plan["levels"][1]["jobParts"] > 1  # 120-byte parts
    assert host.durable_status_code("seed-example") == 404
    assert host.blob_names() == [] and sfsim.requests_log() == []


def test_required_fields_are_checked_against_the_orgs_describe(start_bulk_host, sfsim):
    host = start_bulk_host()
    answer = host.post({"loadId": "no-names", "levels": [
        {"name": "accounts", "object": "Account", "operation": "upsert",
         "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": "A1", "Name": "Fine"}, {"External_Id__c": "A2"}]},
        {"name": "opportunities", "object": "Opportunity", "operation": "insert",
         "parentReferenceField": "AccountId",
         "records": [{"Name": "Deal", "parentExternalId": "A1"}]},
    ]})
    seed = host.post({"loadId": "no-last-name", "accounts": [
        {"sourceId": "S1", "contacts": [{"firstName": "Ada"}]}]})

    assert answer.status_code == 400, answer.text
    assert sorted((e["pointer"], e["code"]) for e in answer.json()["errors"]) == [
        ("/levels/0/records/1/Name", "REQUIRED_FIELD_MISSING"),
        ("/levels/1/records/0/CloseDate", "REQUIRED_FIELD_MISSING"),
        ("/levels/1/records/0/StageName", "REQUIRED_FIELD_MISSING")]
    assert any("/sobjects/Opportunity/describe" in r["path"] for r in sfsim.requests_log())
    assert seed.status_code == 400
    assert sorted((e["pointer"], e["code"]) for e in seed.json()["errors"]) == [
        ("/accounts/0/contacts/0/lastName", "REQUIRED_FIELD_MISSING"),
        ("/accounts/0/name", "REQUIRED_FIELD_MISSING")]
    assert host.blob_names() == []


def test_invalid_text_and_the_na_text_are_refused_and_formulas_come_back_as_text(
    start_bulk_host, sfsim
):
    host = start_bulk_host()
    surrogate = host.post(None, raw=b'{"loadId": "bad-text", "accounts": [{"name": '
                                    b'"Acme \\ud800", "sourceId": "A1"}]}')
    not_available = host.post({"loadId": "na-text", "accounts": [
        {"name": "Acme", "sourceId": "A1", "billingCity": "#N/A"}]})
    formulas = {"loadId": "formulas", "accounts": [
        {"name": '=HYPERLINK("http://evil.example","x")', "sourceId": "F1",
         "industry": None, "contacts": [{"lastName": "+cmd|' /C calc'!A0"}]},
        {"name": "@SUM(1+1)", "sourceId": "F2", "billingCity": "N" * 300,
         "contacts": [{"lastName": "-2+3"}]}]}
    loaded = host.post(formulas)

    assert (surrogate.status_code, surrogate.json()["errors"][0]["code"]) == (400,
                                                                             "INVALID_TEXT")
    assert surrogate.json()["errors"][0]["pointer"] == "/accounts/0/name"
    assert (not_available.status_code, not_available.json()["errors"][0]["code"]) == (
        400, "NULL_MARKER_TEXT")
    assert host.durable_status_code("bad-text") == 404
    assert host.durable_status_code("na-text") == 404
    assert loaded.status_code == 202, loaded.text
    host.wait_for_end("formulas")
    # Salesforce got the values as posted...
    names = {a["External_Id__c"]: a["Name"] for a in sfsim.records("Account")}
    assert names == {"F1": '=HYPERLINK("http://evil.example","x")'}
    # ...and the CSVs the app answers hand a spreadsheet text, never a formula.
    results = rows(host.get("/api/bulk-loads/formulas/results"))
    failures = rows(host.get("/api/bulk-loads/formulas/failures"))
    assert {row.get("Name") or row.get("LastName") for row in results} == {
        "'=HYPERLINK(\"http://evil.example\",\"x\")", "'+cmd|' /C calc'!A0"}
    assert {row["Name"] for row in failures if row["kind"] == "failed"} == {"'@SUM(1+1)"}
    assert [row["LastName"] for row in failures if row["kind"] == "orphaned"] == ["'-2+3"]
    for row in results + failures:
        assert not any(value[:1] in "=+-@" for value in row.values() if value), row


def test_a_crash_after_the_claim_frees_the_load_id_for_the_next_post(start_bulk_host, sfsim):
    host = start_bulk_host(APP_CRASH_AT=CLAIMED)
    with contextlib.suppress(requests.ConnectionError):  # the host dies answering
        host.post(SEED_LOAD)
    host.host.process.wait(timeout=30)
    host.env.pop("APP_CRASH_AT")
    host.start_again()

    deadline = time.monotonic() + 60
    while (answer := host.post(SEED_LOAD)).status_code == 409:
        assert answer.json()["code"] == "LOAD_STARTING", answer.text
        assert int(answer.headers["Retry-After"]) <= 15
        assert time.monotonic() < deadline, "the claim of the crashed request was never freed"
        time.sleep(1)

    assert answer.status_code == 202, answer.text
    assert host.wait_for_end("seed-example")["output"]["outcome"] == "succeeded"
    assert len(sfsim.records("Account")) == 2 and len(sfsim.records("Contact")) == 3


def test_a_started_load_whose_claim_is_not_marked_is_answered_as_started(
        start_bulk_host, sfsim):
    """Marking the load id's claim started (a Blob Storage write after start_new) fails:
    the load is started all the same, so the answer is 202, the load runs once, its claim
    step marks the claim, and the same load posted again answers that load."""
    host = start_bulk_host(**{FAULT_SETTING: MARKING_CLAIM})

    started = host.post(SEED_LOAD)

    assert started.status_code == 202, started.text
    assert started.json()["loadId"] == "seed-example"
    assert "fault point" not in started.text
    assert host.wait_for_end("seed-example")["output"]["outcome"] == "succeeded"
    assert len(sfsim.records("Account")) == 2 and len(sfsim.records("Contact")) == 3
    claim = read_claim(BlobServiceClient.from_connection_string(
        host.env["AzureWebJobsStorage"]).get_blob_client(
            host.env["BULK_LOAD_CONTAINER"], "seed-example/claim"))
    assert claim is not None and claim.started
    log = host.host.output()
    assert ("bulk load claim not marked: load_id=seed-example, error_type=InjectedFault"
            in log)
    assert f"fault point {MARKING_CLAIM} reached" in log  # the traceback, in the log only
    assert "http request failed" not in log

    again = host.post(SEED_LOAD)
    assert again.status_code == 200, again.text
    assert (again.json()["loadId"], again.json()["runtimeStatus"]) == ("seed-example",
                                                                       "Completed")
    assert len(sfsim.records("Account")) == 2 and len(sfsim.records("Contact")) == 3


def test_failures_csv_is_complete_after_a_host_killed_mid_level(start_bulk_host, sfsim):
    host = start_bulk_host(SALESFORCE_MAX_RETRIES="1", SALESFORCE_RETRY_BACKOFF="0.05",
                           BULK_LOAD_ACTIVITY_ATTEMPTS="2")
    sfsim.configure(job_delay_seconds=3600)
    assert host.post(SEED_LOAD).status_code == 202
    deadline = time.monotonic() + 60
    while host.get("/api/bulk-loads/seed-example").json()["phase"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    host.kill()
    sfsim.configure(error_rate_5xx=1.0)  # Salesforce is down when the host comes back
    host.start_again()
    status = host.wait_for_end("seed-example", timeout=90)

    accounts, contacts = status["output"]["levels"]
    assert (accounts["state"], accounts["errorCode"]) == ("failed", "SALESFORCE_UNAVAILABLE")
    assert (contacts["state"], contacts["orphansSkipped"]) == ("skipped", 3)
    assert "\n" not in accounts["error"] and len(accounts["error"]) <= 300
    assert "Traceback" not in json.dumps(status["output"])
    assert accounts["failed"] == 2
    report = rows(host.get("/api/bulk-loads/seed-example/failures"))
    assert sorted((row["kind"], row["externalId"] or row["Email"]) for row in report) == [
        ("failed", "ERP-1001"), ("failed", "ERP-1002"),
        ("orphaned", "ada@acme.example"), ("orphaned", "alan@acme.example"),
        ("orphaned", "hank@globex.example")]
    assert all(row["error"].startswith("SALESFORCE_UNAVAILABLE:") for row in report
               if row["kind"] == "failed")
    assert all(len(row["error"]) < 500 for row in report)


def test_retrying_failures_loads_them_linked_to_the_load_and_its_parents(
    start_bulk_host, sfsim
):
    host = start_bulk_host()
    sfsim.configure(job_delay_seconds=0.5)
    body = {"loadId": "first", "accounts": [
        {"name": "Good", "sourceId": "G1", "industry": None,
         "contacts": [{"lastName": "Lovelace", "email": "ada@example.com"}]},
        {"name": "N" * 300, "sourceId": "B1",
         "contacts": [{"lastName": "Orphan", "email": "o@example.com"}]}]}
    assert host.post(body).status_code == 202
    # Once the accounts are in, every contact row finds its account locked (transient).
    deadline = time.monotonic() + 60
    while host.get("/api/bulk-loads/first").json()["levels"][0]["state"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sfsim.configure(record_lock_failure_rate=1.0)
    first = host.wait_for_end("first")["output"]
    assert [(level["succeeded"], level["failed"], level["orphansSkipped"])
            for level in first["levels"]] == [(1, 1, 0), (0, 1, 1)]
    sfsim.configure(record_lock_failure_rate=0.0)

    retry = post_to(host, "/api/bulk-loads/first/retry-failures")

    assert retry.status_code == 202, retry.text
    assert (retry.json()["loadId"], retry.json()["retryOf"]) == ("first.retry", "first")
    second = host.wait_for_end("first.retry")["output"]
    assert second["retryOf"] == "first"
    assert [(level["records"], level["succeeded"], level["failed"], level["orphansSkipped"])
            for level in second["levels"]] == [(1, 0, 1, 0), (2, 1, 0, 1)]
    # The contact whose account the first load created went out linked to that account.
    good = next(a for a in sfsim.records("Account") if a["External_Id__c"] == "G1")
    assert [(c["LastName"], c["AccountId"]) for c in sfsim.records("Contact")] == [
        ("Lovelace", good["Id"])]
    assert len(sfsim.records("Account")) == 1
    # Posting the retry again answers the same retry.
    again = post_to(host, "/api/bulk-loads/first/retry-failures")
    assert (again.status_code, again.json()["loadId"]) == (200, "first.retry")
    report = rows(host.get("/api/bulk-loads/first.retry/failures"))
    assert sorted((row["kind"], row["externalId"] or row["Email"]) for row in report) == [
        ("failed", "B1"), ("orphaned", "o@example.com")]
