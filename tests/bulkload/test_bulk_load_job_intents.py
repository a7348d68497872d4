"""A part's ingest job is created once in effect: a try after a lost create aborts the job
the lost one left Open, a try after a lost answer answers the recorded job; jobs that other
parts own or may own are left alone. Azurite tables and the simulator's Bulk API 2.0."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.bulkload import jobs as job_steps
from shared.bulkload.job_intents import JobIntents, PartJob
from shared.bulkload.request import LoadLevel
from shared.bulkload.validation import validate_load_request
from shared.salesforce import SalesforceClient


def account_level() -> LoadLevel:
    return validate_load_request({"levels": [
        {"object": "Account", "operation": "upsert", "externalIdField": "External_Id__c",
         "records": [{"External_Id__c": "A1", "Name": "One"}]}]}).levels[0]


def part_of_new_load(part: int = 0) -> PartJob:
    return PartJob(f"load-{uuid.uuid4().hex[:8]}", 0, part)


def lose_a_create(client: SalesforceClient, intents: JobIntents, part: PartJob,
                  level: LoadLevel) -> str:
    """What a try that died after Salesforce created the job leaves: the part's row without
    a job id, and an Open job nobody knows."""
    assert intents.begin(part, level, datetime.now(UTC)) is None
    return client.create_ingest_job(level.object, level.operation, level.external_id_field).id


def open_jobs(client: SalesforceClient) -> set[str]:
    return {job.id for job in client.list_jobs() if job.state == "Open"}


def test_the_try_after_a_lost_create_aborts_the_job_it_left_open(sf_client, job_intents):
    level, part = account_level(), part_of_new_load()
    lost = lose_a_create(sf_client, job_intents, part, level)

    job = job_steps.create_level_job(sf_client, job_intents, part, level, datetime.now(UTC))

    assert job.id != lost and job.state == "Open"
    assert sf_client.get_job(lost).state == "Aborted"
    assert open_jobs(sf_client) == {job.id}


def test_the_try_after_a_lost_answer_answers_the_recorded_job(sf_client, job_intents):
    level, part = account_level(), part_of_new_load()
    first = job_steps.create_level_job(sf_client, job_intents, part, level, datetime.now(UTC))

    again = job_steps.create_level_job(sf_client, job_intents, part, level, datetime.now(UTC))

    assert again.id == first.id
    assert open_jobs(sf_client) == {first.id}


def test_jobs_of_other_parts_objects_and_operations_are_left_open(sf_client, job_intents):
    level, mine, other = account_level(), part_of_new_load(), part_of_new_load()
    lost = lose_a_create(sf_client, job_intents, mine, level)
    # Another load's job, created and recorded meanwhile (it is being uploaded).
    recorded = job_steps.create_level_job(sf_client, job_intents, other, level,
                                          datetime.now(UTC))
    contact = sf_client.create_ingest_job("Contact", "insert").id
    insert = sf_client.create_ingest_job("Account", "insert").id
    other_field = sf_client.create_ingest_job("Account", "upsert", "Id").id

    job = job_steps.create_level_job(sf_client, job_intents, mine, level, datetime.now(UTC))

    assert sf_client.get_job(lost).state == "Aborted"
    assert open_jobs(sf_client) == {job.id, recorded.id, contact, insert, other_field}


def test_while_another_parts_create_is_under_way_its_possible_jobs_wait_for_its_next_try(
    sf_client, job_intents
):
    level, mine, other = account_level(), part_of_new_load(), part_of_new_load()
    lost = lose_a_create(sf_client, job_intents, mine, level)
    # Another load's create began meanwhile and has not recorded its job (yet).
    other_lost = lose_a_create(sf_client, job_intents, other, level)

    job = job_steps.create_level_job(sf_client, job_intents, mine, level, datetime.now(UTC))

    # Either job may be the other create's, which may still record it: both stay.
    assert open_jobs(sf_client) == {lost, other_lost, job.id}

    # That create had died too: its next try finds both unowned and aborts them.
    other_job = job_steps.create_level_job(sf_client, job_intents, other, level,
                                           datetime.now(UTC))

    assert open_jobs(sf_client) == {job.id, other_job.id}
    assert {sf_client.get_job(lost).state, sf_client.get_job(other_lost).state} == {"Aborted"}


# -- a part's job created, uploaded and closed in one step, tried again after each ---------

PART_CSV = b"External_Id__c,Name\nA1,One\n"


def staged_part(store) -> str:
    blob = store.level_blob(0, "part-0.csv")
    store.upload_bytes(blob, PART_CSV, "text/csv")
    return blob


def all_job_ids(client: SalesforceClient) -> set[str]:
    return {job.id for job in client.list_jobs()}


def test_a_part_is_submitted_in_one_step(sf_client, job_intents, store):
    level, part, blob = account_level(), part_of_new_load(), staged_part(store)
    before = all_job_ids(sf_client)

    job = job_steps.submit_part_job(sf_client, job_intents, store, part, level, blob,
                                    datetime.now(UTC))

    assert job.state != "Open"
    assert all_job_ids(sf_client) - before == {job.id}
    assert job_steps.poll_jobs(sf_client, [job.id])[0].state in (
        "UploadComplete", "InProgress", "JobComplete")


def test_the_try_after_a_lost_create_submits_a_new_job_and_aborts_the_lost_one(
    sf_client, job_intents, store
):
    level, part, blob = account_level(), part_of_new_load(), staged_part(store)
    lost = lose_a_create(sf_client, job_intents, part, level)

    job = job_steps.submit_part_job(sf_client, job_intents, store, part, level, blob,
                                    datetime.now(UTC))

    assert job.id != lost and job.state != "Open"
    assert sf_client.get_job(lost).state == "Aborted"
    assert open_jobs(sf_client) == set()


def test_the_try_after_an_upload_closes_the_recorded_job(sf_client, job_intents, store):
    level, part, blob = account_level(), part_of_new_load(), staged_part(store)
    # What a try that died after the upload leaves: the job recorded, its data stored, Open.
    created = job_steps.create_level_job(sf_client, job_intents, part, level,
                                         datetime.now(UTC))
    with store.download(blob) as data:
        sf_client.upload_job_data(created.id, data)
    before = all_job_ids(sf_client)

    job = job_steps.submit_part_job(sf_client, job_intents, store, part, level, blob,
                                    datetime.now(UTC))

    assert job.id == created.id and job.state != "Open"
    assert all_job_ids(sf_client) == before
    assert open_jobs(sf_client) == set()


def test_the_try_after_a_close_answers_the_recorded_job(sf_client, job_intents, store):
    level, part, blob = account_level(), part_of_new_load(), staged_part(store)
    first = job_steps.submit_part_job(sf_client, job_intents, store, part, level, blob,
                                      datetime.now(UTC))
    before = all_job_ids(sf_client)

    again = job_steps.submit_part_job(sf_client, job_intents, store, part, level, blob,
                                      datetime.now(UTC))

    assert again.id == first.id and again.state != "Open"
    assert all_job_ids(sf_client) == before
