"""Bulk API 2.0 ingest through the client, against the simulator: every step and refusal."""

from __future__ import annotations

import io

import pytest

from sfsim.testing import SimulatorHandle
from shared.salesforce import SalesforceClient, SalesforceError, write_ingest_csv
from tests.salesforce.client_setup import wait_for_job


def csv_bytes(rows, columns, **options) -> io.BytesIO:
    out = io.BytesIO()
    write_ingest_csv(rows, columns, out, **options)
    out.seek(0)
    return out


def run_job(
    client: SalesforceClient,
    sobject: str,
    operation: str,
    data: io.BytesIO,
    external_id_field: str | None = None,
    **options,
):
    job = client.create_ingest_job(sobject, operation, external_id_field, **options)
    assert job.state == "Open"
    client.upload_job_data(job.id, data)
    closed = client.close_job(job.id)
    assert closed.state == "UploadComplete"
    return wait_for_job(client, job.id)


def test_insert_job_reports_results_by_row(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    rows = [{"Name": f"Account {i}", "External_Id__c": f"E{i}"} for i in range(50)]
    rows.append({"Name": "", "External_Id__c": "NONAME"})
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name", "External_Id__c"]))
    assert (job.state, job.number_records_processed, job.number_records_failed) == (
        "JobComplete",
        51,
        1,
    )
    assert job.raw["jobType"] == "V2Ingest"
    successes = list(client.successful_results(job.id))
    assert {r["External_Id__c"] for r in successes} == {f"E{i}" for i in range(50)}
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("001") for r in successes)
    failures = list(client.failed_results(job.id))
    assert [r["External_Id__c"] for r in failures] == ["NONAME"]
    assert failures[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert list(client.unprocessed_records(job.id)) == []
    stored = {r["External_Id__c"]: r["Id"] for r in sfsim.records("Account")}
    assert {r["External_Id__c"]: r["sf__Id"] for r in successes} == stored


def test_result_order_is_not_the_input_order(client: SalesforceClient) -> None:
    rows = [{"Name": f"N{i}", "External_Id__c": f"O{i}"} for i in range(300)]
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name", "External_Id__c"]))
    order = [r["External_Id__c"] for r in client.successful_results(job.id)]
    assert sorted(order) == sorted(r["External_Id__c"] for r in rows)
    assert order != [r["External_Id__c"] for r in rows]


def test_three_level_upsert_with_relationship_columns(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    accounts = run_job(
        client,
        "Account",
        "upsert",
        csv_bytes([{"External_Id__c": "ACC-1", "Name": "Parent"}], ["External_Id__c", "Name"]),
        "External_Id__c",
    )
    assert accounts.number_records_failed == 0
    opportunities = run_job(
        client,
        "Opportunity",
        "upsert",
        csv_bytes(
            [
                {
                    "External_Id__c": "OPP-1",
                    "Name": "Deal",
                    "StageName": "Prospecting",
                    "CloseDate": "2026-12-31",
                    "Account.External_Id__c": "ACC-1",
                },
                {
                    "External_Id__c": "OPP-2",
                    "Name": "Orphan",
                    "StageName": "Prospecting",
                    "CloseDate": "2026-12-31",
                    "Account.External_Id__c": "ACC-404",
                },
            ],
            ["External_Id__c", "Name", "StageName", "CloseDate", "Account.External_Id__c"],
        ),
        "External_Id__c",
    )
    assert opportunities.number_records_failed == 1
    failure = next(client.failed_results(opportunities.id))
    assert failure["External_Id__c"] == "OPP-2"
    assert failure["sf__Error"].startswith(
        "INVALID_FIELD:Foreign key external ID: ACC-404 not found for field External_Id__c "
        "in entity Account"
    )
    items = run_job(
        client,
        "OpportunityLineItem",
        "upsert",
        csv_bytes(
            [{"External_Id__c": "LI-1", "Quantity": 2, "Opportunity.External_Id__c": "OPP-1"}],
            ["External_Id__c", "Quantity", "Opportunity.External_Id__c"],
        ),
        "External_Id__c",
    )
    assert items.number_records_failed == 0
    account_id = sfsim.records("Account")[0]["Id"]
    opportunity = next(r for r in sfsim.records("Opportunity") if r["External_Id__c"] == "OPP-1")
    line_item = sfsim.records("OpportunityLineItem")[0]
    assert opportunity["AccountId"] == account_id
    assert line_item["OpportunityId"] == opportunity["Id"]
    assert line_item["Quantity"] == 2.0


def test_na_clears_a_field_and_empty_leaves_it(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    columns = ["External_Id__c", "LastName", "Email", "Phone"]
    run_job(
        client,
        "Contact",
        "upsert",
        csv_bytes(
            [{"External_Id__c": "C", "LastName": "L", "Email": "a@b.example", "Phone": "123"}],
            columns,
        ),
        "External_Id__c",
    )
    job = run_job(
        client,
        "Contact",
        "upsert",
        csv_bytes(
            [{"External_Id__c": "C", "LastName": "L", "Email": None, "Phone": ""}],
            columns,
            clear_nulls=True,
        ),
        "External_Id__c",
    )
    assert job.number_records_failed == 0
    result = next(client.successful_results(job.id))
    assert result["sf__Created"] == "false"
    (contact,) = sfsim.records("Contact")
    assert contact["Email"] is None
    assert contact["Phone"] == "123"


def test_update_and_delete_by_id(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    ids = sfsim.insert_records("Account", [{"Name": "One"}, {"Name": "Two"}])
    job = run_job(
        client,
        "Account",
        "update",
        csv_bytes(
            [{"Id": ids[0], "Name": "Uno"}, {"Id": "001000000000000", "Name": "?"}], ["Id", "Name"]
        ),
    )
    assert job.number_records_failed == 1
    assert next(client.failed_results(job.id))["sf__Error"].startswith(
        "INVALID_CROSS_REFERENCE_KEY:"
    )
    job = run_job(client, "Account", "delete", csv_bytes([{"Id": ids[1]}], ["Id"]))
    assert job.number_records_processed == 1
    assert [r["Name"] for r in sfsim.records("Account")] == ["Uno"]


def test_tab_delimiter_and_crlf_round_trip_tricky_values(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    name = 'Tab\tcomma, quote " newline\nünïcödé'
    data = csv_bytes([{"Name": name}], ["Name"], line_ending="CRLF", column_delimiter="TAB")
    job = run_job(client, "Account", "insert", data, line_ending="CRLF", column_delimiter="TAB")
    assert job.number_records_failed == 0
    assert next(client.successful_results(job.id))["Name"] == name
    assert sfsim.records("Account")[0]["Name"] == name


def test_line_ending_that_does_not_match_the_job_fails_it(client: SalesforceClient) -> None:
    data = csv_bytes([{"Name": "x"}], ["Name"], line_ending="CRLF")
    job = run_job(client, "Account", "insert", data)
    assert job.state == "Failed"
    assert "LineEnding is invalid on user data" in (job.error_message or "")


def test_unknown_column_fails_the_job(client: SalesforceClient) -> None:
    job = run_job(client, "Account", "insert", csv_bytes([{"Nope__c": "x"}], ["Nope__c"]))
    assert job.state == "Failed"
    assert job.error_message == "InvalidBatch : Field name not found : Nope__c"
    assert [r["Nope__c"] for r in client.unprocessed_records(job.id)] == ["x"]


def test_second_upload_is_refused(client: SalesforceClient) -> None:
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, csv_bytes([{"Name": "a"}], ["Name"]))
    with pytest.raises(SalesforceError) as caught:
        client.upload_job_data(job.id, csv_bytes([{"Name": "b"}], ["Name"]))
    assert caught.value.error_code == "BULK_API_ERROR"
    assert "Found multiple contents for job" in caught.value.message


def test_abort_an_open_job_and_its_empty_results(client: SalesforceClient) -> None:
    job = client.create_ingest_job("Account", "insert")
    aborted = client.abort_job(job.id)
    assert aborted.state == "Aborted"
    assert client.get_job(job.id).state == "Aborted"
    # Nothing was uploaded: Salesforce answers 204 and the client yields no rows.
    assert list(client.unprocessed_records(job.id)) == []
    with pytest.raises(SalesforceError) as caught:
        client.close_job(job.id)
    assert caught.value.error_code == "INVALIDJOBSTATE"


def test_aborting_a_closed_job_leaves_its_rows_unprocessed(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.configure(job_delay_seconds=5)
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, csv_bytes([{"Name": "later"}], ["Name"]))
    client.close_job(job.id)
    assert client.abort_job(job.id).state == "Aborted"
    assert [r["Name"] for r in client.unprocessed_records(job.id)] == ["later"]
    assert sfsim.records("Account") == []


def test_job_moves_through_its_states(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    sfsim.configure(job_delay_seconds=0.3)
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, csv_bytes([{"Name": "x"}], ["Name"]))
    client.close_job(job.id)
    seen = []
    while not seen or seen[-1] != "JobComplete":
        state = client.get_job(job.id).state
        if not seen or seen[-1] != state:
            seen.append(state)
    assert seen == ["UploadComplete", "InProgress", "JobComplete"]


def test_delete_only_a_closed_job(client: SalesforceClient) -> None:
    job = client.create_ingest_job("Account", "insert")
    with pytest.raises(SalesforceError) as caught:
        client.delete_job(job.id)
    assert caught.value.error_code == "INVALIDJOBSTATE"
    client.upload_job_data(job.id, csv_bytes([{"Name": "x"}], ["Name"]))
    client.close_job(job.id)
    wait_for_job(client, job.id)
    client.delete_job(job.id)
    with pytest.raises(SalesforceError) as caught:
        client.get_job(job.id)
    assert (caught.value.status, caught.value.error_code) == (404, "NOT_FOUND")


def test_list_jobs_shows_every_job(client: SalesforceClient) -> None:
    created = {client.create_ingest_job("Account", "insert").id for _ in range(3)}
    listed = {job.id: job for job in client.list_jobs()}
    assert created <= set(listed)
    assert all(listed[i].state == "Open" for i in created)


def test_list_jobs_filters_by_job_type(client: SalesforceClient) -> None:
    created = client.create_ingest_job("Account", "insert").id

    assert created in {job.id for job in client.list_jobs(job_type="V2Ingest")}
    assert created not in {job.id for job in client.list_jobs(job_type="Classic")}
    assert created not in {job.id for job in client.list_jobs(is_pk_chunking_enabled=True)}


def test_job_creation_refusals(client: SalesforceClient) -> None:
    with pytest.raises(SalesforceError) as caught:
        client.create_ingest_job("Nothing__c", "insert")
    assert (caught.value.status, caught.value.error_code) == (400, "INVALIDJOB")
    with pytest.raises(SalesforceError, match="not an external id"):
        client.create_ingest_job("Account", "upsert", "Name")
    with pytest.raises(ValueError, match="external id field is needed"):
        client.create_ingest_job("Account", "upsert")


def test_a_job_that_fails_midway_reports_processed_and_unprocessed_rows(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.configure(
        fail_next_jobs=1,
        failed_job_processes_records=3,
        job_failure_message="InternalServerError : simulated outage",
    )
    rows = [{"Name": f"R{i}"} for i in range(8)]
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name"]))
    assert job.state == "Failed"
    assert job.error_message == "InternalServerError : simulated outage"
    assert job.number_records_processed == 3
    done = {r["Name"] for r in client.successful_results(job.id)}
    left = {r["Name"] for r in client.unprocessed_records(job.id)}
    assert len(done) == 3
    assert done | left == {r["Name"] for r in rows}
    assert not done & left


def test_submit_load_splits_into_jobs_under_the_upload_limit(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    limit = 2_000
    sfsim.configure(max_upload_bytes=limit)
    rows = [
        {"External_Id__c": f"S{i:04}", "Name": f'Split, "{i}"\nsecond line'} for i in range(300)
    ]
    data = csv_bytes(rows, ["External_Id__c", "Name"])
    assert len(data.getvalue()) > 5 * limit
    jobs = client.submit_ingest_load(
        "Account", "upsert", data, "External_Id__c", max_part_bytes=limit
    )
    assert len(jobs) > 5
    finished = [wait_for_job(client, job.id) for job in jobs]
    assert all(j.state == "JobComplete" and j.number_records_failed == 0 for j in finished)
    assert sum(j.number_records_processed for j in finished) == 300
    names = {r["External_Id__c"]: r["Name"] for r in sfsim.records("Account")}
    assert names == {r["External_Id__c"]: r["Name"] for r in rows}


def test_upload_over_the_limit_is_refused(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    sfsim.configure(max_upload_bytes=100)
    job = client.create_ingest_job("Account", "insert")
    with pytest.raises(SalesforceError) as caught:
        client.upload_job_data(job.id, io.BytesIO(b"Name\n" + b"x" * 200 + b"\n"))
    assert caught.value.status == 413
    assert client.get_job(job.id).state == "Open"


def test_duplicate_external_id_in_an_insert_job_fails_the_second_row(
    client: SalesforceClient,
) -> None:
    rows = [{"Name": "first", "External_Id__c": "DUP"}, {"Name": "second", "External_Id__c": "DUP"}]
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name", "External_Id__c"]))
    assert (job.number_records_processed, job.number_records_failed) == (2, 1)
    failure = next(client.failed_results(job.id))
    assert failure["sf__Error"].startswith("DUPLICATE_VALUE:duplicate value found: External_Id__c")


def test_upload_from_an_iterable_of_chunks(client: SalesforceClient,
                                           sfsim: SimulatorHandle) -> None:
    chunks = iter([b"Name,External_Id__c\nChunk", b"ed one,CH1\nChunked two,", b"CH2\n"])
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, chunks)
    client.close_job(job.id)
    assert wait_for_job(client, job.id).number_records_processed == 2
    assert sorted(r["Name"] for r in sfsim.records("Account")) == ["Chunked one", "Chunked two"]


def test_expired_session_during_an_upload_that_cannot_be_repeated(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    from shared.salesforce import SalesforceAuthError

    job = client.create_ingest_job("Account", "insert")
    sfsim.expire_tokens()
    with pytest.raises(SalesforceAuthError, match="cannot be rewound"):
        client.upload_job_data(job.id, iter([b"Name\nx\n"]))
    # Nothing was stored: the job still takes its one upload.
    client.upload_job_data(job.id, io.BytesIO(b"Name\nx\n"))


def test_row_lock_contention_fails_records_with_unable_to_lock_row(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.configure(record_lock_failure_rate=0.5, seed=3)
    rows = [{"Name": f"L{i}"} for i in range(200)]
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name"]))
    failures = list(client.failed_results(job.id))
    assert 0 < len(failures) < 200
    assert {f["sf__Error"].split(":")[0] for f in failures} == {"UNABLE_TO_LOCK_ROW"}
    assert len(sfsim.records("Account")) == 200 - len(failures)


def test_hard_delete_and_the_job_options_salesforce_echoes(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    ids = sfsim.insert_records("Account", [{"Name": "Gone"}, {"Name": "Stays"}])
    job = client.create_ingest_job(
        "Account", "hardDelete", line_ending="CRLF", column_delimiter="SEMICOLON",
        assignment_rule_id="01Q4x000000001AAA",
    )
    assert (job.raw["lineEnding"], job.raw["columnDelimiter"]) == ("CRLF", "SEMICOLON")
    assert job.raw["assignmentRuleId"] == "01Q4x000000001AAA"
    data = csv_bytes([{"Id": ids[0]}], ["Id"], line_ending="CRLF", column_delimiter="SEMICOLON")
    client.upload_job_data(job.id, data)
    client.close_job(job.id)
    finished = wait_for_job(client, job.id)
    assert (finished.operation, finished.state, finished.number_records_failed) == (
        "hardDelete", "JobComplete", 0)
    assert [r["Id"] for r in client.successful_results(job.id)] == [ids[0]]
    assert [r["Name"] for r in sfsim.records("Account")] == ["Stays"]


@pytest.mark.parametrize("gzip", [False, True])
@pytest.mark.parametrize("framing", ["content-length", "chunked", "auto"])
def test_results_read_the_same_whatever_the_download_framing(
    client: SalesforceClient, sfsim: SimulatorHandle, framing: str, gzip: bool
) -> None:
    """Issue 16: a Content-Length result download closed the raw stream under the CSV
    reader (`ValueError: I/O operation on closed file`) and the load failed."""
    sfsim.configure(download_framing=framing, download_gzip=gzip)
    rows = [{"Name": f"Framed account {i}", "External_Id__c": f"F{i}"} for i in range(2000)]
    rows.append({"Name": "", "External_Id__c": "NONAME"})
    job = run_job(client, "Account", "insert", csv_bytes(rows, ["Name", "External_Id__c"]))

    successes = list(client.successful_results(job.id))
    failures = list(client.failed_results(job.id))

    assert sorted(r["External_Id__c"] for r in successes) == sorted(f"F{i}" for i in range(2000))
    assert [r["External_Id__c"] for r in failures] == ["NONAME"]
    assert {r["External_Id__c"]: r["sf__Id"] for r in successes} == {
        r["External_Id__c"]: r["Id"] for r in sfsim.records("Account")
    }


def test_a_job_tells_when_it_was_closed_and_ended_and_how_long_it_applied_records(
    client: SalesforceClient, sfsim: SimulatorHandle,
) -> None:
    sfsim.configure(job_delay_seconds=0.2)
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, csv_bytes([{"Name": "A"}], ["Name"]))
    closed = client.close_job(job.id)

    ended = wait_for_job(client, job.id)

    assert closed.system_modstamp is not None and ended.system_modstamp is not None
    # Two steps of 0.2 s between the close and the end; the records applied in far less.
    assert (ended.system_modstamp - closed.system_modstamp).total_seconds() >= 0.4
    assert ended.active_processing_seconds is not None
    assert 0 <= ended.active_processing_seconds < 0.2
    assert closed.active_processing_seconds is None  # the close answers no times of work


def test_job_times_in_a_form_not_understood_are_left_out() -> None:
    from datetime import UTC, datetime

    from shared.salesforce import IngestJob

    sent = IngestJob.from_json({"id": "750A", "systemModstamp": "2026-12-02T09:37:30.250+0000",
                                "apiActiveProcessingTime": 1250})
    garbled = IngestJob.from_json({"id": "750B", "systemModstamp": "yesterday",
                                   "apiActiveProcessingTime": "1250"})

    assert sent.system_modstamp == datetime(2026, 12, 2, 9, 37, 30, 250_000, tzinfo=UTC)
    assert sent.active_processing_seconds == 1.25
    assert (garbled.system_modstamp, garbled.active_processing_seconds) == (None, None)
