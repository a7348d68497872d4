"""Bulk loads end to end: HTTP starter, orchestration and activities on the local host
(devhost, durable engine on Azurite), Salesforce played by the simulator."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise

import requests

SEED_LOAD = {
    "loadId": "seed-example",
    "accounts": [
        {"name": "Acme Corp", "industry": "Manufacturing", "billingCity": "Springfield",
         "sourceId": "ERP-1001",
         "contacts": [
             {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@acme.example"},
             {"firstName": "Alan", "lastName": "Turing", "email": "alan@acme.example"},
         ]},
        {"name": "Globex", "industry": "Energy", "billingCity": "Cypress Creek",
         "sourceId": "ERP-1002",
         "contacts": [{"firstName": "Hank", "lastName": "Scorpio",
                       "email": "hank@globex.example"}]},
    ],
}


def by_field(records: list[dict], name: str) -> dict[str, dict]:
    return {record[name]: record for record in records}


def test_seed_example_loads_accounts_then_contacts_with_their_account_ids(
    start_bulk_host, sfsim
):
    host = start_bulk_host()

    started = host.post(SEED_LOAD)

    assert started.status_code == 202, started.text
    assert started.json()["id"] == "seed-example"
    assert started.headers["Location"] == started.json()["statusUrl"]
    status = host.wait_for_end("seed-example")
    assert status["runtimeStatus"] == "Completed", status
    summary = status["output"]
    accounts = by_field(sfsim.records("Account"), "External_Id__c")
    assert set(accounts) == {"ERP-1001", "ERP-1002"}
    assert accounts["ERP-1001"]["BillingCity"] == "Springfield"
    contacts = by_field(sfsim.records("Contact"), "Email")
    assert {email: contact["AccountId"] for email, contact in contacts.items()} == {
        "ada@acme.example": accounts["ERP-1001"]["Id"],
        "alan@acme.example": accounts["ERP-1001"]["Id"],
        "hank@globex.example": accounts["ERP-1002"]["Id"],
    }
    assert summary["outcome"] == "succeeded"
    account_level, contact_level = summary["levels"]
    assert (account_level["object"], account_level["submitted"], account_level["succeeded"],
            account_level["failed"]) == ("Account", 2, 2, 0)
    assert (contact_level["object"], contact_level["submitted"], contact_level["succeeded"],
            contact_level["orphansSkipped"]) == ("Contact", 3, 3, 0)
    assert len(account_level["jobs"]) == 1 and len(contact_level["jobs"]) == 1
    assert status["customStatus"]["phase"] == "completed"
    # The status URL the 202 named is the one a user follows, under the function key.
    followed = host.get(started.json()["statusUrl"])
    assert followed.json()["summary"] == summary
    assert followed.json()["percent"] == 100.0
    results = list(csv.DictReader(io.StringIO(host.get(started.json()["resultsUrl"]).text)))
    assert sorted((row["level"], row["sfId"]) for row in results) == sorted(
        [("accounts", account["Id"]) for account in accounts.values()]
        + [("contacts", contact["Id"]) for contact in contacts.values()])
    assert summary["loadedRecords"] == 5
    # Records stay out of orchestration history: only counts, job ids and blob names.
    history = host.durable_status("seed-example", showHistory="true",
                                  showHistoryOutput="true", showInput="true")
    text = json.dumps(history)
    for leaked in ("Lovelace", "ada@acme.example", "Springfield", sfsim.client_secret):
        assert leaked not in text


def test_posting_the_same_load_id_again_answers_its_status_and_loads_nothing(
    start_bulk_host, sfsim
):
    host = start_bulk_host()
    assert host.post(SEED_LOAD).status_code == 202
    host.wait_for_end("seed-example")

    again = host.post(SEED_LOAD)

    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == "seed-example"
    assert body["runtimeStatus"] == "Completed"
    assert body["summary"]["levels"][0]["succeeded"] == 2
    assert len(sfsim.records("Account")) == 2
    assert len(sfsim.records("Contact")) == 3
    # The same records in other bytes (the body's digest differs): compared record by
    # record, the same load.
    reformatted = host.post(None, raw=json.dumps(SEED_LOAD, indent=2).encode())
    assert reformatted.status_code == 200, reformatted.text
    assert reformatted.json()["runtimeStatus"] == "Completed"
    # Other records under the same id: refused, naming the difference.
    changed = json.loads(json.dumps(SEED_LOAD))
    changed["accounts"][1]["contacts"].append({"lastName": "Simpson"})
    conflict = host.post(changed)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "LOAD_ID_CONFLICT")
    assert "level 'contacts' has 4 records; the load has 3" in conflict.json()["detail"]
    assert len(sfsim.records("Contact")) == 3

    # After its history is purged the id still cannot load a second time.
    purged = requests.delete(
        host.host.url("/runtime/webhooks/durabletask/instances/seed-example"),
        params={"code": host.host.master_key}, timeout=30)
    assert purged.status_code == 200, purged.text
    assert host.durable_status_code("seed-example") == 404
    after_purge = host.post(SEED_LOAD)
    assert after_purge.status_code == 409, after_purge.text
    assert after_purge.headers["Content-Type"].startswith("application/problem+json")
    assert after_purge.json()["code"] == "LOAD_ID_USED"
    assert host.durable_status_code("seed-example") == 404
    assert len(sfsim.records("Account")) == 2
    assert len(sfsim.records("Contact")) == 3


def test_concurrent_posts_of_one_load_id_start_one_load(start_bulk_host, sfsim):
    host = start_bulk_host()

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: host.post(SEED_LOAD), range(6)))

    codes = [answer.status_code for answer in answers]
    assert codes.count(202) == 1 and set(codes) <= {200, 202, 409}, codes
    # A loser answers the load's status, or 409 while the winner has not started it yet.
    assert all(answer.json()["id"] == "seed-example" for answer in answers
               if answer.status_code != 409)
    assert all(answer.json()["code"] == "LOAD_STARTING" for answer in answers
               if answer.status_code == 409)
    host.wait_for_end("seed-example")
    later = host.post(SEED_LOAD)
    assert (later.status_code, later.json()["runtimeStatus"]) == (200, "Completed")
    assert len(sfsim.records("Account")) == 2
    assert len(sfsim.records("Contact")) == 3


def test_accounts_that_fail_never_get_their_contacts_submitted(
    start_bulk_host, sfsim, sf_client
):
    """10,000 accounts (1% without a Name, which Salesforce refuses) and 30,000 contacts."""
    host = start_bulk_host()
    rng = random.Random(7)
    invalid = set(rng.sample(range(10_000), 100))
    accounts = []
    for number in range(10_000):
        account = {"sourceId": f"A{number:05d}", "industry": "Energy",
                   "contacts": [{"firstName": f"F{number}-{k}", "lastName": f"L{number}-{k}",
                                 "email": f"c{number}-{k}@example.com"} for k in range(3)]}
        # A name over Account.Name's 255 characters: refused by Salesforce, not before.
        account["name"] = ("N" * 300) if number in invalid else f"Account {number}"
        accounts.append(account)

    started = host.post({"loadId": "ten-thousand", "accounts": accounts})

    assert started.status_code == 202, started.text
    status = host.wait_for_end("ten-thousand", timeout=240)
    assert status["runtimeStatus"] == "Completed", status
    summary = status["output"]
    account_level, contact_level = summary["levels"]
    stored_accounts = sfsim.records("Account")
    stored_contacts = sfsim.records("Contact")
    assert account_level["submitted"] == 10_000
    assert account_level["succeeded"] == len(stored_accounts) == 9_900
    assert account_level["failed"] == 100
    assert account_level["failedByError"] == {"STRING_TOO_LONG": 100}
    assert contact_level["orphansSkipped"] == 300
    assert contact_level["submitted"] == 29_700
    assert contact_level["succeeded"] == len(stored_contacts) == 29_700
    assert summary["outcome"] == "completed_with_failures"
    # No child of a failed parent was ever submitted: every contact hangs off a good account.
    good_ids = {account["Id"] for account in stored_accounts}
    assert all(contact["AccountId"] in good_ids for contact in stored_contacts)
    invalid_emails = {f"c{number}-{k}@example.com" for number in invalid for k in range(3)}
    assert invalid_emails.isdisjoint(contact["Email"] for contact in stored_contacts)
    # The simulator's own account of each job agrees with the summary, and every row it was
    # sent for the contact level (successful + failed results) belongs to a loaded account.
    for level in (account_level, contact_level):
        jobs = [sf_client.get_job(job_id) for job_id in level["jobs"]]
        assert [job.state for job in jobs] == ["JobComplete"] * len(jobs)
        assert sum(job.number_records_processed for job in jobs) == level["submitted"]
        assert sum(job.number_records_failed for job in jobs) == level["failed"]
    sent_contacts = [row for job_id in contact_level["jobs"]
                     for rows in (sf_client.successful_results(job_id),
                                  sf_client.failed_results(job_id))
                     for row in rows]
    assert len(sent_contacts) == 29_700
    assert invalid_emails.isdisjoint(row["Email"] for row in sent_contacts)
    assert {row["AccountId"] for row in sent_contacts} == good_ids

    failures = host.get(summary["failuresUrl"])
    assert failures.status_code == 200
    assert failures.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(failures.text)))
    assert len(rows) == 400
    failed_accounts = [row for row in rows if row["kind"] == "failed"]
    orphans = [row for row in rows if row["kind"] == "orphaned"]
    assert {row["externalId"] for row in failed_accounts} == {f"A{n:05d}" for n in invalid}
    assert {row["Email"] for row in orphans} == invalid_emails
    assert all(row["error"].startswith("PARENT_NOT_LOADED:parent Account")
               and "STRING_TOO_LONG" in row["error"] for row in orphans)
    assert {row["parentExternalId"] for row in orphans} == {f"A{n:05d}" for n in invalid}


THREE_LEVELS = {
    "loadId": "three-levels",
    "levels": [
        {"name": "accounts", "object": "Account", "operation": "upsert",
         "externalIdField": "External_Id__c",
         "records": [
             {"External_Id__c": "ACC-1", "Name": "Initech",
              "opportunities": [
                  {"External_Id__c": "OPP-1", "Name": "Printers", "StageName": "Prospecting",
                   "CloseDate": "2026-12-31",
                   "lineItems": [{"External_Id__c": "OLI-1", "Quantity": 3},
                                 {"External_Id__c": "OLI-2", "Quantity": 1.5}]},
              ]},
             {"External_Id__c": "ACC-2", "Name": "Initrode"},
             {"External_Id__c": "ACC-3", "Name": "Bad", "NumberOfEmployees": "many"},
         ]},
        {"name": "opportunities", "object": "Opportunity", "operation": "upsert",
         "externalIdField": "External_Id__c", "parentReferenceField": "AccountId",
         "records": [
             {"External_Id__c": "OPP-2", "Name": "Staplers", "StageName": "Closed Won",
              "CloseDate": "2026-11-30", "parentExternalId": "ACC-2"},
             {"External_Id__c": "OPP-3", "Name": "Lost", "StageName": "Prospecting",
              "CloseDate": "2026-11-30", "parentExternalId": "ACC-3"},
         ]},
        {"name": "lineItems", "object": "OpportunityLineItem", "operation": "upsert",
         "externalIdField": "External_Id__c", "parentReferenceField": "OpportunityId",
         "records": [
             {"External_Id__c": "OLI-3", "Quantity": 2, "parentExternalId": "OPP-2"},
             {"External_Id__c": "OLI-4", "Quantity": 2, "parentExternalId": "OPP-3"},
         ]},
    ],
}


def test_three_levels_link_each_record_to_its_parent_and_skip_grandchildren_of_failures(
    start_bulk_host, sfsim
):
    host = start_bulk_host(BULK_LOAD_UPLOAD_LIMIT_BYTES="120")

    assert host.post(THREE_LEVELS).status_code == 202
    status = host.wait_for_end("three-levels")

    summary = status["output"]
    accounts = by_field(sfsim.records("Account"), "External_Id__c")
    opportunities = by_field(sfsim.records("Opportunity"), "External_Id__c")
    items = by_field(sfsim.records("OpportunityLineItem"), "External_Id__c")
    assert set(accounts) == {"ACC-1", "ACC-2"}
    assert {ext: opp["AccountId"] for ext, opp in opportunities.items()} == {
        "OPP-1": accounts["ACC-1"]["Id"], "OPP-2": accounts["ACC-2"]["Id"]}
    assert {ext: item["OpportunityId"] for ext, item in items.items()} == {
        "OLI-1": opportunities["OPP-1"]["Id"], "OLI-2": opportunities["OPP-1"]["Id"],
        "OLI-3": opportunities["OPP-2"]["Id"]}
    levels = {level["level"]: level for level in summary["levels"]}
    assert (levels["accounts"]["succeeded"], levels["accounts"]["failed"]) == (2, 1)
    assert (levels["opportunities"]["succeeded"], levels["opportunities"]["orphansSkipped"]) \
        == (2, 1)
    assert (levels["lineItems"]["succeeded"], levels["lineItems"]["orphansSkipped"]) == (3, 1)
    # A 120-byte upload limit puts each opportunity (57 bytes + header) in its own job.
    assert len(levels["opportunities"]["jobs"]) == 2
    assert len(set(levels["opportunities"]["jobs"])) == 2
    rows = list(csv.DictReader(io.StringIO(host.get(summary["failuresUrl"]).text)))
    grandchild = next(row for row in rows if row["externalId"] == "OLI-4")
    assert grandchild["kind"] == "orphaned"
    assert "Opportunity 'OPP-3'" in grandchild["error"]
    assert "Account 'ACC-3'" in grandchild["error"]


def test_a_level_whose_job_fails_stops_the_load_with_salesforces_message(
    start_bulk_host, sfsim
):
    host = start_bulk_host()
    sfsim.configure(fail_next_jobs=1, job_failure_message="InternalServerError : batch retries "
                  "exhausted", failed_job_processes_records=0)

    assert host.post(SEED_LOAD).status_code == 202
    status = host.wait_for_end("seed-example")

    summary = status["output"]
    assert summary["outcome"] == "failed"
    account_level, contact_level = summary["levels"]
    assert account_level["state"] == "failed"
    assert "ended Failed: InternalServerError : batch retries exhausted" in \
        account_level["error"]
    assert account_level["unprocessed"] == 2
    assert contact_level["state"] == "skipped"
    assert contact_level["submitted"] == 0 and contact_level["jobs"] == []
    assert sfsim.records("Contact") == []
    rows = list(csv.DictReader(io.StringIO(host.get(summary["failuresUrl"]).text)))
    assert sorted(row["kind"] for row in rows) == ["orphaned"] * 3 + ["unprocessed"] * 2
    assert all("batch retries exhausted" in row["error"] for row in rows)


def test_a_stalled_job_is_aborted_after_max_wait_and_reported(
    start_bulk_host, sfsim, sf_client
):
    host = start_bulk_host(BULK_LOAD_MAX_WAIT="1.5")
    sfsim.configure(job_delay_seconds=3600)

    assert host.post(SEED_LOAD).status_code == 202
    running = host.get("/api/bulk-loads/seed-example/failures")
    assert (running.status_code, running.json()["code"]) == (409, "LOAD_RUNNING")
    status = host.wait_for_end("seed-example", timeout=60)

    account_level = status["output"]["levels"][0]
    assert account_level["state"] == "failed"
    assert "did not finish within 1.5 s and was aborted" in account_level["error"]
    job_id = account_level["jobs"][0]
    jobs = [request for request in sfsim.requests_log()
            if request["method"] == "PATCH" and job_id in request["path"]]
    assert len(jobs) == 2  # closed, then aborted
    assert sf_client.get_job(job_id).state == "Aborted"
    assert account_level["unprocessed"] == 2
    rows = list(csv.DictReader(io.StringIO(host.get(status["output"]["failuresUrl"]).text)))
    assert sorted((row["kind"], row["externalId"] or row["Email"]) for row in rows) == [
        ("orphaned", "ada@acme.example"), ("orphaned", "alan@acme.example"),
        ("orphaned", "hank@globex.example"),
        ("unprocessed", "ERP-1001"), ("unprocessed", "ERP-1002")]
    assert status["output"]["levels"][1]["state"] == "skipped"
    assert sfsim.records("Contact") == []


def test_validation_errors_are_listed_at_once_and_nothing_starts(start_bulk_host, sfsim):
    host = start_bulk_host(BULK_LOAD_MAX_BODY_BYTES="5000")
    body = {"loadId": "bad", "accounts": [
        {"name": "No id"},
        {"name": "One", "sourceId": "S1"},
        {"name": "Two", "sourceId": "S1"},
        {"name": 7, "sourceId": "S3", "contacts": [{"lastName": ["x"]}]},
    ]}

    answer = host.post(body)

    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    codes = sorted((error["pointer"], error["code"]) for error in answer.json()["errors"])
    assert codes == [
        ("/accounts/0/sourceId", "MISSING_EXTERNAL_ID"),
        ("/accounts/2/sourceId", "DUPLICATE_EXTERNAL_ID"),
        ("/accounts/3/contacts/0/lastName", "WRONG_TYPE"),
        ("/accounts/3/name", "WRONG_TYPE"),
    ]
    assert answer.json()["status"] == 400 and answer.json()["code"] == "INVALID_RECORDS"
    assert answer.json()["instance"] == "/api/bulk-loads"  # never the function key
    assert host.durable_status_code("bad") == 404

    general = host.post({"loadId": "bad-levels", "levels": [
        {"name": "accounts", "object": "Account", "operation": "upsert",
         "externalIdField": "External_Id__c",
         "records": [{"Name": "no id"}, {"External_Id__c": "A1", "Name": "One"},
                     {"External_Id__c": "A1", "Name": "Again"},
                     {"External_Id__c": "A2", "Name": ["not", "text"]}]},
        {"name": "opportunities", "object": "Opportunity", "operation": "insert",
         "externalIdField": "External_Id__c", "parentReferenceField": "AccountId",
         "records": [{"External_Id__c": "O1", "parentExternalId": "A9"},
                     {"External_Id__c": "O2", "parentExternalId": "A1"},
                     {"External_Id__c": "O2", "parentExternalId": "A2"}]},
    ]})

    assert general.status_code == 400
    assert general.headers["Content-Type"].startswith("application/problem+json")
    errors = sorted((e["pointer"], e["code"], e.get("level"), e.get("externalId"))
                    for e in general.json()["errors"])
    assert errors == [
        ("/levels/0/records/0/External_Id__c", "MISSING_EXTERNAL_ID", "accounts", None),
        ("/levels/0/records/2/External_Id__c", "DUPLICATE_EXTERNAL_ID", "accounts", "A1"),
        ("/levels/0/records/3/Name", "WRONG_TYPE", "accounts", "A2"),
        ("/levels/1/records/0/parentExternalId", "UNKNOWN_PARENT", "opportunities", "O1"),
        ("/levels/1/records/2/External_Id__c", "DUPLICATE_EXTERNAL_ID", "opportunities",
         "O2"),
    ]
    assert host.durable_status_code("bad-levels") == 404

    too_large = host.post(None, raw=b'{"accounts": [' + b" " * 6000 + b"]}")
    assert too_large.status_code == 413
    assert too_large.headers["Content-Type"].startswith("application/problem+json")
    assert too_large.json()["code"] == "BODY_TOO_LARGE"
    malformed = host.post(None, raw=b"{not json")
    assert (malformed.status_code, malformed.json()["code"]) == (400, "MALFORMED_JSON")
    assert malformed.headers["Content-Type"].startswith("application/problem+json")
    assert sfsim.requests_log() == []
    assert host.blob_names() == []  # nothing staged, no load id claimed
    unknown = host.get("/api/bulk-loads/never-posted/failures")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "UNKNOWN_LOAD")
    assert unknown.headers["Content-Type"].startswith("application/problem+json")


def test_instances_of_other_orchestrations_are_not_taken_for_loads(start_bulk_host, sfsim):
    host = start_bulk_host()
    started = requests.post(
        host.host.url("/runtime/webhooks/durabletask/orchestrators/other_orchestration/"
                      "not-a-load"), params={"code": host.host.master_key}, json=None,
        timeout=30)
    assert started.status_code == 202, started.text
    assert host.wait_for_end("not-a-load")["runtimeStatus"] == "Completed"
    key = {"code": host.host.function_key}

    failures = host.get("/api/bulk-loads/not-a-load/failures")
    cancel = requests.post(host.host.url("/api/bulk-loads/not-a-load/cancel"), params=key,
                           timeout=30)
    post = host.post({**SEED_LOAD, "loadId": "not-a-load"})
    deep = requests.post(host.host.url("/api/bulk-loads/not-a-load/cancel"), params=key,
                         data=b"[" * 200_000 + b"]" * 200_000, timeout=30)

    assert (failures.status_code, failures.json()["code"]) == (404, "UNKNOWN_LOAD")
    assert (cancel.status_code, cancel.json()["code"]) == (404, "UNKNOWN_LOAD")
    assert (post.status_code, post.json()["code"]) == (409, "LOAD_ID_USED")
    assert post.headers["Content-Type"].startswith("application/problem+json")
    assert (deep.status_code, deep.json()["code"]) == (400, "INVALID_BODY")
    assert sfsim.requests_log() == []


def test_a_host_restart_mid_poll_resumes_polling(start_bulk_host, sfsim):
    host = start_bulk_host()
    sfsim.configure(job_delay_seconds=1.0)
    assert host.post(SEED_LOAD).status_code == 202
    # Wait until the account job is being polled, then kill the host.
    deadline = time.monotonic() + 60
    while True:
        status = host.durable_status("seed-example")
        custom = status.get("customStatus") or {}
        if custom.get("phase") == "waiting" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert custom.get("phase") == "waiting", status
    account_job = custom["jobs"][0]["id"]

    host.kill()
    seen_before_restart = len(sfsim.requests_log())
    host.start_again()
    status = host.wait_for_end("seed-example", timeout=90)

    assert status["runtimeStatus"] == "Completed"
    assert len(sfsim.records("Account")) == 2
    assert len(sfsim.records("Contact")) == 3
    # One job per level: the restart created no second job.
    assert [len(level["jobs"]) for level in status["output"]["levels"]] == [1, 1]
    assert status["output"]["levels"][0]["jobs"] == [account_job]
    # The new host went on polling the job the killed one was waiting for.
    after_restart = sfsim.requests_log()[seen_before_restart:]
    assert any(request["method"] == "GET" and request["path"].rstrip("/").endswith(
        f"/jobs/ingest/{account_job}") for request in after_restart), after_restart
    created = [request for request in sfsim.requests_log()
               if request["method"] == "POST" and request["path"].rstrip("/").endswith(
                   "/jobs/ingest")]
    assert len(created) == 2  # the account job before the kill, the contact job after


def _moment(text: str) -> datetime:
    whole, _, fraction = text.replace("Z", "").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}").replace(tzinfo=UTC)


def test_the_first_poll_comes_soon_after_the_close_then_polls_back_off_to_the_interval(
    start_bulk_host, sfsim
):
    host = start_bulk_host(BULK_LOAD_POLL_INTERVAL="2")
    sfsim.configure(job_delay_seconds=1.5)  # each job takes 3 s or more

    assert host.post(SEED_LOAD).status_code == 202
    assert host.wait_for_end("seed-example")["runtimeStatus"] == "Completed"

    history = host.durable_status("seed-example", showHistory="true")["historyEvents"]
    levels: list[list[tuple[datetime, datetime]]] = []
    for event in history:
        # The steps that submit a level's job (created and closed): its polls follow.
        if event.get("FunctionName") in ("bulk_load_submit_part", "bulk_load_claim_and_stage",
                                          "bulk_load_collect_and_stage"):
            levels.append([])
        elif event["EventType"] == "TimerCreated" and levels:
            levels[-1].append((_moment(event["Timestamp"]), _moment(event["FireAt"])))
    levels = [timers for timers in levels if timers]  # the last level's results: no polls
    assert len(levels) == 2
    for timers in levels:
        assert len(timers) >= 3  # 0.5 s and 1.5 s after the close the job still ran
        created, first = timers[0]
        # The first look is due half a second after the orchestration saw the close.
        assert abs((first - created).total_seconds() - 0.5) < 0.001
        gaps = [(later - earlier).total_seconds()
                for (_, earlier), (_, later) in pairwise(timers)]
        # Then 1 s, then the interval (later if a look itself came back late).
        assert gaps[0] >= 1.0 - 0.001
        assert all(gap >= 2.0 - 0.001 for gap in gaps[1:])


def test_a_running_load_can_be_terminated_through_the_durable_api(start_bulk_host, sfsim):
    host = start_bulk_host()
    sfsim.configure(job_delay_seconds=3600)
    started = host.post(SEED_LOAD)
    assert started.status_code == 202

    # An operator's tool: the Durable API, under the system key the loads API never hands out.
    terminate = requests.post(
        host.host.url("/runtime/webhooks/durabletask/instances/seed-example/terminate"),
        params={"code": host.host.master_key, "reason": "operator-stop"}, timeout=30)

    assert terminate.status_code == 202, terminate.text
    status = host.wait_for_end("seed-example", timeout=30)
    assert status["runtimeStatus"] == "Terminated"
    assert sfsim.records("Contact") == []
    failures = host.get("/api/bulk-loads/seed-example/failures")
    assert (failures.status_code, failures.json()["code"]) == (404, "NO_FAILURE_REPORT")


def test_a_cancelled_load_aborts_its_salesforce_job_and_reports_what_was_not_loaded(
    start_bulk_host, sfsim, sf_client
):
    host = start_bulk_host()
    sfsim.configure(job_delay_seconds=3600)
    cancel_url = host.host.url("/api/bulk-loads/seed-example/cancel")
    key = {"code": host.host.function_key}
    assert host.post(SEED_LOAD).status_code == 202
    deadline = time.monotonic() + 60
    while (host.durable_status("seed-example").get("customStatus") or {}).get("phase") != "waiting":
        assert time.monotonic() < deadline, "the load never reached its first poll"
        time.sleep(0.1)

    bad = requests.post(cancel_url, params=key, data=b"[1]", timeout=30)
    too_long = requests.post(cancel_url, params=key, json={"reason": "x" * 501}, timeout=30)
    answer = requests.post(cancel_url, params=key, json={"reason": "wrong export file"},
                           timeout=30)

    assert bad.status_code == 400 and too_long.status_code == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    assert "longer than 500" in too_long.json()["detail"]
    assert answer.status_code == 202 and answer.json()["reason"] == "wrong export file"
    status = host.wait_for_end("seed-example", timeout=60)
    summary = status["output"]
    assert (summary["outcome"], summary["cancelReason"]) == ("cancelled", "wrong export file")
    accounts, contacts = summary["levels"]
    assert accounts["state"] == "cancelled" and contacts["state"] == "skipped"
    assert sf_client.get_job(accounts["jobs"][0]).state == "Aborted"
    assert sfsim.records("Contact") == []
    rows = list(csv.DictReader(io.StringIO(host.get(summary["failuresUrl"]).text)))
    assert sorted((row["kind"], row["externalId"] or row["Email"]) for row in rows) == [
        ("orphaned", "ada@acme.example"), ("orphaned", "alan@acme.example"),
        ("orphaned", "hank@globex.example"),
        ("unprocessed", "ERP-1001"), ("unprocessed", "ERP-1002")]
    again = requests.post(cancel_url, params=key, timeout=30)
    assert (again.status_code, again.json()["code"]) == (409, "LOAD_ENDED")
    unknown = requests.post(host.host.url("/api/bulk-loads/nope/cancel"), params=key,
                            timeout=30)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "UNKNOWN_LOAD")


def test_a_restart_through_the_durable_api_never_sends_the_records_again(start_bulk_host, sfsim):
    host = start_bulk_host()
    host.post(SEED_LOAD)
    ended = host.wait_for_end("seed-example")
    assert ended["runtimeStatus"] == "Completed"
    assert len(sfsim.records("Contact")) == 3
    restart_url = host.host.url("/runtime/webhooks/durabletask/instances/seed-example/restart")
    key = {"code": host.host.master_key}
    calls_before = len(sfsim.requests_log())

    as_new = requests.post(restart_url, params=key, timeout=30)
    in_place = requests.post(restart_url, params={**key, "restartWithNewInstanceId": "false"},
                             timeout=30)

    assert as_new.status_code == 202 and in_place.status_code == 202
    copy = host.wait_for_end(as_new.json()["id"])
    assert copy["runtimeStatus"] == "Failed"
    assert "cannot be restarted under a new id" in json.dumps(copy["output"])
    # The load that ended keeps its status and summary; nothing was retried or sent.
    again = host.wait_for_end("seed-example")
    assert again["runtimeStatus"] == "Completed"
    assert again["output"] == ended["output"]
    assert host.get("/api/bulk-loads/seed-example").json()["summary"] == ended["output"]
    assert len(sfsim.records("Contact")) == 3
    assert len(sfsim.records("Account")) == 2
    assert len(sfsim.requests_log()) == calls_before
    # Refused at once: the restarted execution claimed once, and no activity failed.
    log = host.host.output()
    assert log.count("Executed 'Functions.bulk_load_claim_and_stage' (Succeeded") == 2
    assert "Executed 'Functions.bulk_load_claim_and_stage' (Failed" not in log


def test_text_holding_a_nul_character_reaches_salesforce_and_the_failures_as_posted(
    start_bulk_host, sfsim
):
    """U+0000 is kept end to end: in the staged records, the Bulk API CSV, the id map and
    the failure report (nothing on the way is an ODBC bind or a table key)."""
    host = start_bulk_host()
    load = {"loadId": "nul-text", "accounts": [
        {"name": "Ac\u0000me", "industry": "M", "billingCity": "Spring\u0000field",
         "sourceId": "ERP\u00001",
         "contacts": [{"firstName": "A\u0000da", "lastName": "L", "email": "ada@acme.example"}]},
        {"name": "B" * 300, "industry": "M", "sourceId": "ERP\u00002", "contacts": []}]}

    assert host.post(load).status_code == 202
    status = host.wait_for_end("nul-text")

    assert status["output"]["outcome"] == "completed_with_failures", status
    [account] = sfsim.records("Account")
    assert (account["External_Id__c"], account["Name"], account["BillingCity"]) == (
        "ERP\u00001", "Ac\u0000me", "Spring\u0000field")
    [contact] = sfsim.records("Contact")
    assert (contact["FirstName"], contact["AccountId"]) == ("A\u0000da", account["Id"])
    report = list(csv.DictReader(io.StringIO(host.get("/api/bulk-loads/nul-text/failures").text)))
    assert [(row["externalId"], row["error"].split(":")[0]) for row in report] == [
        ("ERP\u00002", "STRING_TOO_LONG")]
