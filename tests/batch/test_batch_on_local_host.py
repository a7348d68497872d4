"""Batch jobs end to end on the local host: HTTP in, durable orchestration, Azurite."""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.batch import batch_durable_id
from shared.batch.instances import record_staging
from shared.storage.tables import table_client


def contacts(count: int) -> list[dict]:
    return [{"n": n} for n in range(count)]


def test_a_posted_instance_runs_every_step_and_reports_mule_counts(start_batch_host) -> None:
    batch = start_batch_host()
    answer = batch.post("counted", contacts(1050), instanceId="first")
    assert answer.status_code == 202, answer.text
    assert answer.json()["batchJobInstanceId"] == "first"
    result = batch.wait_for_end("counted", "first")
    failed_a = len(range(0, 1050, 97))  # refused by step a
    failed_b = len([n for n in range(1050) if n % 1000 == 7 and n % 97])  # refused in a group
    assert result["status"] == "SUCCESSFUL"
    assert (result["totalRecords"], result["loadedRecords"], result["processedRecords"]) == (
        1050, 1050, 1050)
    assert result["failedRecords"] == failed_a + failed_b
    assert result["successfulRecords"] == 1050 - failed_a - failed_b
    steps = {step["stepName"]: step for step in result["steps"]}
    assert steps["b"] == {"stepName": "b", "receivedRecords": 1050 - failed_a,
                          "successfulRecords": 1050 - failed_a - failed_b,
                          "failedRecords": failed_b}
    assert steps["d"]["receivedRecords"] == failed_a + failed_b
    assert result["failedOnCompletePhase"] is False
    groups = [line.split(",") for line in (batch.log_dir / "groups.log").read_text().split()]
    sizes = sorted((int(size) for _, _, size in groups), reverse=True)
    assert sizes[:-1] == [200] * (len(sizes) - 1) and 0 < sizes[-1] <= 200
    assert sum(sizes) == 1050 - failed_a
    report = list(csv.DictReader(io.StringIO(batch.get(
        "/api/batch-jobs/counted/first/failures").text)))
    assert len(report) == failed_a + failed_b
    assert {row["step"] for row in report} == {"a", "b"}
    listed = batch.get("/api/batch-jobs/counted").json()["instances"]
    assert listed[0]["batchJobInstanceId"] == "first"
    assert listed[0]["status"] == "SUCCESSFUL" and listed[0]["processedRecords"] == 1050
    assert listed[0]["elapsedTimeInMillis"] == result["elapsedTimeInMillis"]


def test_the_instance_list_comes_a_page_at_a_time_newest_first(start_batch_host) -> None:
    batch = start_batch_host()
    for name in ("p1", "p2", "p3"):
        assert batch.post("window", contacts(3), instanceId=name).status_code == 202
    first = batch.get("/api/batch-jobs/window?limit=2").json()
    assert [row["batchJobInstanceId"] for row in first["instances"]] == ["p3", "p2"]
    last = batch.get(f"/api/batch-jobs/window?limit=2&after={first['next']}").json()
    assert [row["batchJobInstanceId"] for row in last["instances"]] == ["p1"]
    assert last["next"] is None
    for query in ("limit=0", "limit=201", "limit=%C2%B2", "after=..%2F", "after=p2"):
        refused = batch.get(f"/api/batch-jobs/window?{query}")
        assert refused.status_code == 400, (query, refused.text)
        assert refused.json()["code"] == "INVALID_QUERY"


def test_duplicate_instance_id_is_refused(start_batch_host) -> None:
    batch = start_batch_host()
    assert batch.post("window", contacts(3), instanceId="once").status_code == 202
    again = batch.post("window", contacts(3), instanceId="once")
    assert again.status_code == 409
    assert again.headers["Content-Type"].startswith("application/problem+json")
    assert again.json()["code"] == "INSTANCE_ID_USED"
    batch.wait_for_end("window", "once")
    assert batch.post("window", contacts(3), instanceId="once").status_code == 409


@pytest.mark.parametrize(("body", "content_type", "code", "bad_indexes"), [
    (b'[{"n": 1}, 2, {"n": "\\ud800"}]', "application/json", "INVALID_RECORDS", [1, 2]),
    (b'{"n": 1}\nnot json\n{"n": 3}\n', "application/x-ndjson", "INVALID_RECORDS", [1]),
    (b"n,name\n1,a\n2\n3,c\n", "text/csv", "INVALID_RECORDS", [1]),
    (b'[{"n": "\xff"}]', "application/json", "INVALID_ENCODING", []),
    (b"<records/>", "application/xml", "UNSUPPORTED_MEDIA_TYPE", []),
    # NaN and infinities are not JSON, though Python's parser reads them (and 1e999 as inf)
    (b'[{"n": 1}, {"n": NaN}, {"n": {"m": [1e999]}}]', "application/json", "INVALID_RECORDS",
     [1, 2]),
    (b'{"n": -Infinity}\n{"n": 2}\n', "application/x-ndjson", "INVALID_RECORDS", [0]),
])
def test_bad_input_is_refused_and_nothing_is_staged(start_batch_host, body, content_type,
                                                    code, bad_indexes) -> None:
    batch = start_batch_host()
    answer = batch.post("window", body, content_type, instanceId="bad")
    assert answer.status_code in (400, 415), answer.text
    assert answer.json()["code"] == code
    assert [error["index"] for error in answer.json()["errors"]] == bad_indexes
    assert batch.blob_names() == []
    assert batch.get("/api/batch-jobs/window/bad").status_code == 404
    # Nothing claimed the id either: the fixed input goes through under it.
    assert batch.post("window", b"n\n1\n2\n", "text/csv", instanceId="bad").status_code == 202
    assert batch.wait_for_end("window", "bad")["processedRecords"] == 2


def test_max_concurrency_is_never_exceeded_on_the_host(start_batch_host) -> None:
    batch = start_batch_host()
    assert batch.post("window", contacts(150), instanceId="w").status_code == 202
    assert batch.wait_for_end("window", "w")["processedRecords"] == 150
    running, peak = (int(part) for part in (batch.log_dir / "window.txt").read_text().split())
    assert running == 0
    assert 1 <= peak <= 3


def test_failure_limit_stops_new_blocks_on_the_host(start_batch_host) -> None:
    batch = start_batch_host()
    assert batch.post("stop-early", contacts(500), instanceId="s").status_code == 202
    result = batch.wait_for_end("stop-early", "s")
    assert result["status"] == "FAILED_PROCESS_RECORDS"
    assert 3 < result["failedRecords"] <= 3 + 10 * 2
    assert result["processedRecords"] < 500


def _spans(batch) -> dict[str, tuple[int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    for line in (batch.log_dir / "order.log").read_text().split():
        instance, _index, moment = line.split(",")
        first, last = spans.get(instance, (int(moment), int(moment)))
        spans[instance] = (min(first, int(moment)), max(last, int(moment)))
    return spans


def test_ordered_sequential_instances_run_one_at_a_time_in_creation_order(
        start_batch_host) -> None:
    batch = start_batch_host()
    names = ["o1", "o2", "o3"]
    for name in names:
        assert batch.post("ordered", contacts(20), instanceId=name).status_code == 202
    for name in names:
        assert batch.wait_for_end("ordered", name)["status"] == "SUCCESSFUL"
    spans = _spans(batch)
    assert spans["o1"][1] < spans["o2"][0] and spans["o2"][1] < spans["o3"][0], spans


def test_the_ordered_queue_keeps_its_order_among_hundreds_of_finished_instances(
        start_batch_host) -> None:
    """The turn check and the finish step read only the rows that may still run; the
    finished ones (and a STAGING row whose request died, claim never taken) are passed."""
    batch = start_batch_host()
    table = table_client(TableServiceClient.from_connection_string(
        batch.env["AzureWebJobsStorage"]), batch.env["BATCH_INSTANCES_TABLE"])
    earlier = datetime.now(UTC) - timedelta(hours=1)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: table.create_entity({
            "PartitionKey": "ordered", "RowKey": f"old-{n:03d}", "DurableId": f"old-{n}",
            "Created": (earlier + timedelta(seconds=n)).isoformat(),
            "Status": "SUCCESSFUL" if n % 3 else "FAILED_PROCESS_RECORDS",
            "Result": "{}"}), range(300)))
    record_staging(table, "ordered", "dead", "batch-ordered-dead", earlier)
    names = ["o1", "o2", "o3"]
    for name in names:
        assert batch.post("ordered", contacts(20), instanceId=name).status_code == 202
    for name in names:
        assert batch.wait_for_end("ordered", name)["status"] == "SUCCESSFUL"
    spans = _spans(batch)
    assert spans["o1"][1] < spans["o2"][0] and spans["o2"][1] < spans["o3"][0], spans


def test_round_robin_instances_run_side_by_side(start_batch_host) -> None:
    batch = start_batch_host()
    for name in ("r1", "r2"):
        assert batch.post("side-by-side", contacts(40), instanceId=name).status_code == 202
    for name in ("r1", "r2"):
        assert batch.wait_for_end("side-by-side", name)["status"] == "SUCCESSFUL"
    spans = _spans(batch)
    assert spans["r2"][0] < spans["r1"][1] and spans["r1"][0] < spans["r2"][1], spans


def terminate_as_an_operator(batch, job: str, instance_id: str) -> None:
    """Terminate the instance's orchestration through the durable API, as an operator."""
    terminated = requests.post(
        batch.host.url("/runtime/webhooks/durabletask/instances/"
                       f"{batch_durable_id(job, instance_id)}/terminate"),
        params={"code": batch.host.master_key, "reason": "operator stop"}, timeout=30)
    assert terminated.status_code == 202, terminated.text


def post_long_ordered_instance_until_under_way(batch, instance_id: str) -> None:
    """Post 600 contacts to the ordered job; return once 50 or more were processed."""
    assert batch.post("ordered", contacts(600), instanceId=instance_id).status_code == 202
    deadline = time.monotonic() + 120
    while batch.result("ordered", instance_id).get("processedRecords", 0) < 50:
        assert time.monotonic() < deadline, batch.result("ordered", instance_id)
        time.sleep(0.1)


def test_an_instance_that_failed_or_was_terminated_lets_the_ordered_queue_go_on(
        start_batch_host) -> None:
    """An orchestration that failed (its activity's retries ran out) or that an operator
    terminated never writes its final row: the next instance's turn check finds it ended
    through the durable API, settles its row (FAILED, STOPPED, with the reason) and goes."""
    batch = start_batch_host()
    container = BlobServiceClient.from_connection_string(
        batch.env["AzureWebJobsStorage"]).get_container_client(batch.env["BATCH_CONTAINER"])
    assert batch.post("ordered", contacts(600), instanceId="long").status_code == 202
    assert batch.post("ordered", contacts(10), instanceId="broken").status_code == 202
    # Its records vanish while it waits: its first block fails as a whole, three times.
    for name in [blob.name for blob in container.list_blobs(
            name_starts_with="ordered/broken/state/")]:
        container.delete_blob(name)
    assert batch.post("ordered", contacts(10), instanceId="stopped").status_code == 202
    assert batch.post("ordered", contacts(10), instanceId="after").status_code == 202
    terminate_as_an_operator(batch, "ordered", "stopped")

    assert batch.wait_for_end("ordered", "after")["status"] == "SUCCESSFUL"

    assert batch.wait_for_end("ordered", "long")["status"] == "SUCCESSFUL"
    broken = batch.result("ordered", "broken")
    assert (broken["status"], broken["runtimeStatus"], broken["endReason"]) == (
        "FAILED", "Failed", "ORCHESTRATION_FAILED")
    stopped = batch.result("ordered", "stopped")
    assert (stopped["status"], stopped["runtimeStatus"], stopped["endReason"]) == (
        "STOPPED", "Terminated", "ORCHESTRATION_TERMINATED")
    listed = {row["batchJobInstanceId"]: row["status"] for row in batch.get(
        "/api/batch-jobs/ordered").json()["instances"]}
    assert listed == {"long": "SUCCESSFUL", "broken": "FAILED", "stopped": "STOPPED",
                      "after": "SUCCESSFUL"}
    spans = _spans(batch)
    assert spans["long"][1] < spans["after"][0], spans


def test_a_terminated_instance_is_listed_with_the_counts_it_reached(start_batch_host) -> None:
    """The row of an instance settled STOPPED (or FAILED) keeps the counts its orchestration
    had reached, as its result answers them; before, the list showed the counts written
    when it began executing (0 processed)."""
    batch = start_batch_host()
    post_long_ordered_instance_until_under_way(batch, "cut")
    terminate_as_an_operator(batch, "ordered", "cut")
    stopped = batch.wait_for_end("ordered", "cut")
    assert stopped["status"] == "STOPPED"
    # The next ordered instance's turn check settles the row of the one before it.
    assert batch.post("ordered", contacts(5), instanceId="next").status_code == 202
    assert batch.wait_for_end("ordered", "next")["status"] == "SUCCESSFUL"

    listed = {row["batchJobInstanceId"]: row for row in batch.get(
        "/api/batch-jobs/ordered").json()["instances"]}
    assert listed["cut"]["status"] == "STOPPED"
    assert listed["cut"]["processedRecords"] == stopped["processedRecords"] >= 50
    assert listed["cut"]["successfulRecords"] == stopped["successfulRecords"]


def test_a_terminated_instance_with_none_behind_it_is_listed_ended_at_once(
        start_batch_host) -> None:
    """The list settles the row of an instance whose orchestration an operator terminated,
    with no ordered instance behind it to do so; before, the list showed it EXECUTING
    until the hourly timer. A running one is listed as it runs."""
    batch = start_batch_host()
    post_long_ordered_instance_until_under_way(batch, "alone")
    running = batch.get("/api/batch-jobs/ordered").json()["instances"]
    assert [(row["batchJobInstanceId"], row["status"]) for row in running] == [
        ("alone", "EXECUTING")]
    terminate_as_an_operator(batch, "ordered", "alone")
    stopped = batch.wait_for_end("ordered", "alone")

    [listed] = batch.get("/api/batch-jobs/ordered").json()["instances"]
    assert (listed["status"], listed["processedRecords"]) == (
        "STOPPED", stopped["processedRecords"])
    row = table_client(TableServiceClient.from_connection_string(
        batch.env["AzureWebJobsStorage"]), batch.env["BATCH_INSTANCES_TABLE"]).get_entity(
        "ordered", "alone")
    assert row["Status"] == "STOPPED"
