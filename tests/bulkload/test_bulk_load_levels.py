"""A level's steps on their own, against Azurite and the simulator: staging (orphans, parts,
nulls), results (ID map, failures by code), the failure report."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from shared.bulkload import jobs as job_steps
from shared.bulkload import levels as steps
from shared.bulkload import reports
from shared.bulkload import staged as staging
from shared.bulkload.fingerprint import level_digest, request_fingerprint
from shared.bulkload.job_intents import PartJob
from shared.bulkload.messages import JobSnapshot, LevelError, LevelErrorCode
from shared.bulkload.store import LoadStore
from shared.bulkload.validation import LoadRequestInvalid, validate_load_request
from tests.salesforce.client_setup import wait_for_job

LOAD = {"levels": [
    {"name": "accounts", "object": "Account", "operation": "upsert",
     "externalIdField": "External_Id__c",
     "records": [{"External_Id__c": "A1", "Name": "Acme, \"the\" company", "Industry": None},
                 {"External_Id__c": "A2"},  # no Name: REQUIRED_FIELD_MISSING
                 {"External_Id__c": "A3", "Name": "Third", "Phone": "555"}]},
    {"name": "contacts", "object": "Contact", "operation": "insert",
     "externalIdField": "External_Id__c", "parentReferenceField": "AccountId",
     "records": [{"External_Id__c": f"C{n}", "LastName": last_name,
                  "parentExternalId": parent} for n, (last_name, parent) in
                 enumerate([("+cmd|' /C calc'!A0", "A1"), ('=HYPERLINK("http://x.example")', "A2"),
                            ("Last 2", "A3"), ("@SUM(1+1)", "A2")])]},
]}


def rows_of(store, blob):
    return list(csv.DictReader(io.StringIO(store.read_bytes(blob).decode("utf-8"))))


def run_level(store, sf_client, job_intents, request, index, upload_limit=10_000_000):
    staged = steps.stage_level(store, request.levels, index, upload_limit)
    jobs = []
    for number, part in enumerate(staged.parts):
        job = job_steps.create_level_job(sf_client, job_intents,
                                         PartJob(store.prefix, index, number),
                                         request.levels[index], datetime.now(UTC))
        job_steps.upload_and_close_job(sf_client, store, job.id, part.blob)
        jobs.append(JobSnapshot.of(wait_for_job(sf_client, job.id)))
    results = steps.collect_level_results(store, sf_client, request.levels, index, jobs,
                                          staged.columns)
    return staged, jobs, results


def test_children_of_failed_parents_are_staged_as_orphans_with_the_parents_error(
    store, sf_client, sfsim, job_intents
):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)

    accounts_staged, _, account_results = run_level(store, sf_client, job_intents, request, 0)
    contacts_staged, _, contact_results = run_level(store, sf_client, job_intents, request, 1)

    assert (accounts_staged.submitted, account_results.succeeded, account_results.failed) == \
        (3, 2, 1)
    assert account_results.failed_by_error == {"REQUIRED_FIELD_MISSING": 1}
    id_map = steps.read_id_map(store, 0)
    assert set(id_map) == {"A1", "A3"}
    assert (contacts_staged.submitted, contacts_staged.orphans) == (2, 2)
    assert contact_results.succeeded == 2
    contacts = {c["External_Id__c"]: c["AccountId"] for c in sfsim.records("Contact")}
    assert contacts == {"C0": id_map["A1"], "C2": id_map["A3"]}
    orphans = rows_of(store, store.level_blob(1, steps.ORPHANS_FILE))
    assert [(o["externalId"], o["parentExternalId"], o["kind"]) for o in orphans] == [
        ("C1", "A2", "orphaned"), ("C3", "A2", "orphaned")]
    assert all(o["error"].startswith("PARENT_NOT_LOADED:parent Account 'A2' was not loaded: "
                                     "REQUIRED_FIELD_MISSING") for o in orphans)
    # The staged contact CSV carried Salesforce ids, never the orphans.
    part = store.read_bytes(contacts_staged.parts[0].blob).decode()
    assert part.splitlines()[0] == "External_Id__c,LastName,AccountId"
    assert "C1" not in part and id_map["A1"] in part

    written = reports.write_reports(store, 2)
    report = rows_of(store, written.blob)
    assert written.rows == len(report) == 3
    assert [(row["level"], row["kind"], row["externalId"]) for row in report] == [
        ("accounts", "failed", "A2"), ("contacts", "orphaned", "C1"),
        ("contacts", "orphaned", "C3")]
    assert report[0]["error"].startswith("REQUIRED_FIELD_MISSING")
    # A failed record comes back with its own columns, as sent, read by name.
    assert (report[0]["External_Id__c"], report[0]["Name"], report[0]["Phone"]) == \
        ("A2", "", "")
    assert report[1]["External_Id__c"] == "C1"
    # Salesforce got the names as posted; the reports hand spreadsheets text, no formula.
    assert {c["LastName"] for c in sfsim.records("Contact")} == {"+cmd|' /C calc'!A0",
                                                                 "Last 2"}
    assert [row["LastName"] for row in report[1:]] == ["'=HYPERLINK(\"http://x.example\")",
                                                       "'@SUM(1+1)"]
    results = rows_of(store, reports.write_results_report(store, request.levels))
    assert len(results) == 4
    by_id = {row["externalId"]: row for row in results}
    assert by_id["C0"]["LastName"] == "'+cmd|' /C calc'!A0"
    assert by_id["C0"]["sfId"] in {c["Id"] for c in sfsim.records("Contact")}
    assert (by_id["C0"]["parentExternalId"], by_id["A3"]["sfId"]) == ("A1", id_map["A3"])
    # The contacts are a leaf: their successes were kept as Salesforce sent them, read only
    # for the results report; the accounts' were read at once, for their children's ids.
    assert store.exists(store.level_blob(1, "successes-0.csv"))
    assert not store.exists(store.level_blob(1, steps.SUCCEEDED_FILE))
    assert not store.exists(store.level_blob(1, steps.ID_MAP_FILE))
    assert store.exists(store.level_blob(0, steps.SUCCEEDED_FILE))
    assert [row["level"] for row in results] == ["accounts"] * 2 + ["contacts"] * 2


def test_json_null_clears_a_field_and_an_absent_field_is_left_alone(
    store, sf_client, sfsim, job_intents
):
    sfsim.insert_records("Account", [{"Name": "Old", "External_Id__c": "A1",
                                    "Industry": "Energy", "Phone": "111"}])
    request = validate_load_request({"levels": [
        {"object": "Account", "operation": "upsert", "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": "A1", "Industry": None},
                     {"External_Id__c": "A9", "Name": "New", "Phone": "999"}]}]})
    staging.stage_request(store, request)

    run_level(store, sf_client, job_intents, request, 0)

    stored = {a["External_Id__c"]: a for a in sfsim.records("Account")}
    assert stored["A1"]["Industry"] is None
    assert (stored["A1"]["Name"], stored["A1"]["Phone"]) == ("Old", "111")


def test_empty_text_clears_a_field_as_null_does(store, sf_client, sfsim, job_intents):
    """Salesforce keeps no empty text: "" through its REST API clears the field. An empty
    CSV value leaves the field as it was, so "" is sent as #N/A too."""
    sfsim.insert_records("Account", [{"Name": "Old", "External_Id__c": "A1",
                                    "Industry": "Energy", "Phone": "111"}])
    request = validate_load_request({"levels": [
        {"object": "Account", "operation": "upsert", "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": "A1", "Phone": ""},
                     {"External_Id__c": "A9", "Name": "New", "Industry": "Energy"}]}]})
    staging.stage_request(store, request)

    run_level(store, sf_client, job_intents, request, 0)

    stored = {a["External_Id__c"]: a for a in sfsim.records("Account")}
    assert stored["A1"]["Phone"] is None
    assert (stored["A1"]["Name"], stored["A1"]["Industry"]) == ("Old", "Energy")


def test_a_level_above_the_upload_limit_is_staged_in_parts_that_all_load(
    store, sf_client, sfsim, job_intents
):
    request = validate_load_request({"levels": [
        {"object": "Account", "operation": "upsert", "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": f"A{n:03d}", "Name": f"Account {n}"}
                     for n in range(100)]}]})
    staging.stage_request(store, request)

    staged, jobs, results = run_level(store, sf_client, job_intents, request, 0, upload_limit=400)

    assert len(staged.parts) == len(jobs) > 1
    assert all(part.size_bytes <= 400 for part in staged.parts)
    assert sum(part.records for part in staged.parts) == 100
    assert results.succeeded == 100 == len(sfsim.records("Account"))
    # A one-level load is a leaf: each job's successes kept, all of them in the results.
    report = rows_of(store, reports.write_results_report(store, request.levels))
    assert sorted(row["externalId"] for row in report) == [f"A{n:03d}" for n in range(100)]
    assert {row["sfId"] for row in report} == {a["Id"] for a in sfsim.records("Account")}


def test_uploading_a_part_twice_closes_the_job_once(store, sf_client, sfsim, job_intents):
    request = validate_load_request({"levels": [
        {"object": "Account", "operation": "insert", "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": "A1", "Name": "Once"}]}]})
    staging.stage_request(store, request)
    staged = steps.stage_level(store, request.levels, 0, 10_000)
    job = job_steps.create_level_job(sf_client, job_intents, PartJob(store.prefix, 0, 0),
                                     request.levels[0], datetime.now(UTC))
    sf_client.upload_job_data(job.id, io.BytesIO(store.read_bytes(staged.parts[0].blob)))

    # The activity ran again after its upload was stored but before the close.
    first = job_steps.upload_and_close_job(sf_client, store, job.id, staged.parts[0].blob)
    second = job_steps.upload_and_close_job(sf_client, store, job.id, staged.parts[0].blob)

    assert first.state in ("UploadComplete", "InProgress", "JobComplete")
    assert second.state in ("UploadComplete", "InProgress", "JobComplete")
    wait_for_job(sf_client, job.id)
    assert [a["Name"] for a in sfsim.records("Account")] == ["Once"]


def test_a_level_that_failed_unread_reports_each_of_its_records_with_the_levels_error(
    store, sf_client, sfsim, job_intents
):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)
    run_level(store, sf_client, job_intents, request, 0)
    steps.stage_level(store, request.levels, 1, 10_000_000)
    error = LevelError(LevelErrorCode.RESULTS_UNAVAILABLE,
                       "reading the jobs' results failed after 3 tries: CONNECTION_ERROR")

    counted = reports.report_level_failure(store, request.levels, 1, error)

    assert (counted.failed, counted.failed_by_error) == (2, {"RESULTS_UNAVAILABLE": 2})
    report = rows_of(store, reports.write_reports(store, 2).blob)
    contacts = sorted((row["externalId"], row["kind"], row["error"].split(":", 1)[0])
                      for row in report if row["level"] == "contacts")
    assert contacts == [("C0", "failed", "RESULTS_UNAVAILABLE"),
                        ("C1", "orphaned", "PARENT_NOT_LOADED"),
                        ("C2", "failed", "RESULTS_UNAVAILABLE"),
                        ("C3", "orphaned", "PARENT_NOT_LOADED")]
    assert all(len(row["error"]) < 400 and "Traceback" not in row["error"] for row in report)


@pytest.mark.parametrize("with_columns_line", [False, True])
def test_a_level_staged_by_an_earlier_version_stages_the_same_csv(store, with_columns_line):
    # Records staged by an earlier version of the app are {"e", "p", "f"} lines, at first
    # without a columns line: a load that was running across the upgrade reads them, and
    # its columns from the records where that line is missing.
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)
    blob = store.level_blob(0, staging.RECORDS_FILE)
    staged_now = steps.stage_level(store, request.levels, 0, 10_000_000)
    part_now = store.read_bytes(staged_now.parts[0].blob)
    lines = store.read_bytes(blob).splitlines(keepends=True)
    earlier = [json.dumps({"e": record.external_id, "p": record.parent_external_id,
                           "f": record.fields}, separators=(",", ":")).encode() + b"\n"
               for record in request.records[0]]
    store.upload_bytes(blob, b"".join(lines[:1] * with_columns_line + earlier),
                       "application/jsonl")

    staged_before = steps.stage_level(store, request.levels, 0, 10_000_000)

    assert lines[0] == b'{"columns":["External_Id__c","Name","Industry","Phone"]}\n'
    assert staged_before == staged_now
    assert store.read_bytes(staged_before.parts[0].blob) == part_now


def test_a_staged_record_is_the_text_its_fingerprint_reads(store):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)

    for index, fingerprint in enumerate(request_fingerprint(request)):
        staged = store.read_bytes(store.level_blob(index, staging.RECORDS_FILE))
        digest = level_digest(request.levels[index])
        digest.update(b"".join(staged.splitlines(keepends=True)[1:]))
        assert digest.hexdigest() == fingerprint.digest


def test_a_child_level_prepared_while_its_parents_load_stages_the_same_files(
    store, sf_client, sfsim, job_intents
):
    load = json.loads(json.dumps(LOAD))
    load["levels"][1]["records"] += [
        {"External_Id__c": "C8", "LastName": "a lone\rCR", "parentExternalId": "A1"},
        {"External_Id__c": "C9", "LastName": "two\r\nlines, \"quoted\"", "Email": None,
         "parentExternalId": "A2"}]
    request = validate_load_request(load)
    staging.stage_request(store, request)
    staging.prepare_level(store, 1)  # while the accounts' job runs
    run_level(store, sf_client, job_intents, request, 0)

    prepared = steps.stage_level(store, request.levels, 1, 10_000_000)
    prepared_files = [store.read_bytes(prepared.parts[0].blob),
                      store.read_bytes(store.level_blob(1, steps.ORPHANS_FILE))]
    store.container.delete_blob(store.level_blob(1, staging.PREPARED_FILE))
    from_records = steps.stage_level(store, request.levels, 1, 10_000_000)

    assert (prepared.submitted, prepared.orphans) == (3, 3)  # A2 failed: C1, C3, C9 orphaned
    assert prepared == from_records
    assert prepared_files == [store.read_bytes(from_records.parts[0].blob),
                              store.read_bytes(store.level_blob(1, steps.ORPHANS_FILE))]


def test_a_posted_loads_other_levels_are_prepared_and_encoded_from_its_body(store):
    body = json.dumps(LOAD, indent=1).encode()
    request = validate_load_request(json.loads(body))
    first = staging.encode_level(request.levels[0], request.records[0])
    staging.stage_posted(store, request.levels, body, first)
    # Written before the load starts: the body as posted and the first level's records.
    assert store.read_bytes(store.name(staging.BODY_FILE)) == body
    assert store.exists(store.level_blob(0, staging.RECORDS_FILE))
    assert not store.exists(store.level_blob(1, staging.RECORDS_FILE))
    classic = LoadStore(store.container, f"{store.prefix}-classic")
    staging.stage_request(classic, request)
    staging.prepare_level(classic, 1)

    # Prepared from the body, as from records staged at the start.
    staging.prepare_level(store, 1)
    assert store.read_bytes(store.level_blob(1, staging.PREPARED_FILE)) == \
        classic.read_bytes(classic.level_blob(1, staging.PREPARED_FILE))
    assert not store.exists(store.level_blob(1, staging.RECORDS_FILE))
    # A reader of the records file (a failed level's report) has it encoded, and kept.
    expected = classic.read_bytes(classic.level_blob(1, staging.RECORDS_FILE))
    with staging.records_file(store, 1) as local:
        assert local.read() == expected
    assert store.read_bytes(store.level_blob(1, staging.RECORDS_FILE)) == expected
    # A re-post in other bytes is compared with the body's records.
    assert staging.posted_fingerprint(store) == request_fingerprint(request)


SEED_LOAD = {"loadId": "seed-1", "accounts": [
    {"sourceId": 7, "name": "Seven, \"Inc\"", "industry": None,
     "contacts": [{"lastName": "a lone\rCR", "email": None}, {"firstName": "F", "lastName": "L"}]},
    {"sourceId": "A2", "name": "Two", "billingCity": "Oslo"},
    {"sourceId": "A3", "name": "Three", "contacts": []},
    {"sourceId": "A4", "name": "Four", "contacts": [{"lastName": "=1+1"}]},
]}


@pytest.mark.parametrize("index", [0, 1])
def test_a_body_whose_digest_is_the_posts_is_prepared_as_when_validated_again(store, index):
    body = json.dumps(SEED_LOAD).encode()
    request = validate_load_request(json.loads(body))
    first = staging.encode_level(request.levels[0], request.records[0])
    staging.stage_posted(store, request.levels, body, first)
    if index == 0:  # a body with no records file for the level: read from the body
        store.container.delete_blob(store.level_blob(0, staging.RECORDS_FILE))
    staging.prepare_level(store, index)
    validated = store.read_bytes(store.level_blob(index, staging.PREPARED_FILE))
    store.container.delete_blob(store.level_blob(index, staging.PREPARED_FILE))

    staging.prepare_level(store, index, staging.body_digest(body))

    assert store.read_bytes(store.level_blob(index, staging.PREPARED_FILE)) == validated


def test_a_body_that_is_not_the_one_the_post_validated_is_validated_again(store):
    body = json.dumps(SEED_LOAD).encode()
    request = validate_load_request(json.loads(body))
    first = staging.encode_level(request.levels[0], request.records[0])
    staging.stage_posted(store, request.levels, body, first)
    changed = json.loads(body)
    changed["accounts"][3]["contacts"][0]["lastName"] = 12  # not a string: refused
    store.upload_bytes(store.name(staging.BODY_FILE), json.dumps(changed).encode(),
                       "application/json")

    with pytest.raises(LoadRequestInvalid):
        staging.prepare_level(store, 1, staging.body_digest(body))
    assert not store.exists(store.level_blob(1, staging.PREPARED_FILE))
