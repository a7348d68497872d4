"""A load's job-intent rows stay while it runs and go when it has ended, its summary kept;
other loads' rows stay. Azurite tables; the whole load on the local host with the
simulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient

from shared.bulkload.forget_intents import forget_job_intents
from shared.bulkload.job_intents import JobIntents, PartJob
from shared.bulkload.validation import validate_load_request
from tests.bulkload.test_bulk_load_on_local_host import SEED_LOAD


def level(object_name: str):
    return validate_load_request({"levels": [
        {"object": object_name, "operation": "insert", "records": [{"Name": "One"}]}]}
    ).levels[0]


def row_keys(intents: JobIntents) -> set[str]:
    return {row["RowKey"] for row in intents.table.list_entities(select=["RowKey"])}


def test_the_rows_of_the_load_go_in_every_object_and_no_other_loads(job_intents):
    accounts, contacts = level("Account"), level("Contact")
    now = datetime.now(UTC)
    for load_id in ("load-1", "load-1.b", "load-10", "load"):
        job_intents.begin(PartJob(load_id, 0, 0), accounts, now)
    job_intents.begin(PartJob("load-1", 0, 1), accounts, now)
    job_intents.begin(PartJob("load-1", 1, 0), contacts, now)
    job_intents.record(PartJob("load-1", 1, 0), contacts, "750J1")

    assert forget_job_intents(job_intents, "load-1") == 3

    assert row_keys(job_intents) == {PartJob(load_id, 0, 0).row_key
                                     for load_id in ("load-1.b", "load-10", "load")}
    assert forget_job_intents(job_intents, "load-1") == 0


def test_a_loads_rows_are_there_while_it_runs_and_gone_once_it_ended(start_bulk_host, sfsim):
    host = start_bulk_host()
    sfsim.configure(job_delay_seconds=1.0)
    table = TableServiceClient.from_connection_string(
        host.env["AzureWebJobsStorage"]).get_table_client(host.env["BULK_LOAD_JOBS_TABLE"])
    assert host.post(SEED_LOAD).status_code == 202
    deadline = time.monotonic() + 60
    while True:  # until the account job is being polled
        custom = host.durable_status("seed-example").get("customStatus") or {}
        if custom.get("phase") == "waiting" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert custom.get("phase") == "waiting", custom
    mid_load = list(table.list_entities())

    status = host.wait_for_end("seed-example", timeout=90)

    assert [(row["RowKey"], row["JobId"]) for row in mid_load] == [
        (PartJob("seed-example", 0, 0).row_key, custom["jobs"][0]["id"])]
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["outcome"] == "succeeded", status["output"]
    assert list(table.list_entities()) == []
