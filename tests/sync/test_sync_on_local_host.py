"""The sync capability on the local Functions host (devhost), durable engine on Azurite:
the real azure-functions/azure-functions-durable SDKs, HTTP, the durable client."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from azure.data.tables import TableServiceClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared.crash_points import FAULT_SETTING
from shared.sync.starter import RUN_START_AFTER_START_NEW
from tests.sync.local_host import JOB, SOURCE_PASSWORD, run_ended
from tests.sync.sources import BASE


def stored_assets(sim) -> list[str]:
    return [record["External_Id__c"] for record in sim.records("Asset")]


def test_twenty_concurrent_ticks_start_exactly_one_run(sync_host, sqlite_assets, sfsim):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 96))
    sfsim.configure(slow_seconds=0.05)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: sync_host.post(f"/api/sync/{JOB}/run"), range(20)))

    assert sorted(answer.status_code for answer in answers) == [202] + [409] * 19
    skipped = [answer.json() for answer in answers if answer.status_code == 409]
    assert all(problem["title"] == "Run not started" for problem in skipped)
    assert {problem["code"] for problem in skipped} <= {"RUN_IN_PROGRESS", "LOCK_HELD"}
    assert all("tick skipped" in problem["detail"] for problem in skipped)
    assert all("code=" not in problem["instance"] for problem in skipped)

    body = sync_host.wait_for(run_ended)
    assert body["lock"]["runtimeStatus"] == "Completed"
    assert len(body["lastRuns"]) == 1
    run = body["lastRuns"][0]
    assert (run["outcome"], run["rows"], run["pages"]) == ("succeeded", 95, 10)
    assert body["ticks"]["started"] == 1
    assert sum(value for name, value in body["ticks"].items()
               if name.startswith("skipped")) == 19
    assert body["watermark"]["key"] == [95]
    assert sync_host.host.output().count("tick skipped") >= 19
    stored = stored_assets(sfsim)
    assert len(stored) == 95 and len(set(stored)) == 95
    # Rows and secrets stay out of the status, and out of orchestration history.
    history = requests.get(
        sync_host.host.url(f"/runtime/webhooks/durabletask/instances/sync-{JOB}"),
        params={"showHistory": "true", "showHistoryOutput": "true", "showInput": "true",
                "code": sync_host.host.master_key}, timeout=30,
    )
    assert history.status_code == 200, history.text
    assert "TaskCompleted" in history.text  # the page results are there, as counts
    for text in (json.dumps(body), history.text):
        for leaked in (sync_host.env["SALESFORCE_CLIENT_SECRET"], "Asset 17", "SN-00000017",
                       "owner1@example.com", SOURCE_PASSWORD):
            assert leaked not in text
    # Nor do secrets reach the host's log (every function's log lines are in it).
    log = sync_host.host.output()
    assert "sync run began: job=asset-changes, run_id=" in log
    for secret in (sync_host.env["SALESFORCE_CLIENT_SECRET"], SOURCE_PASSWORD):
        assert secret not in log


def test_unknown_job_answers_problem_json(sync_host):
    for response in (sync_host.get("/api/sync/nope"), sync_host.post("/api/sync/nope/run")):
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "asset-changes" in response.json()["detail"]


def test_a_started_run_whose_tick_is_not_counted_is_answered_as_started(
    sync_host, sqlite_assets, sfsim
):
    # Counting the tick (a Table Storage write after start_new) fails on every start.
    sync_host.host.stop()
    sync_host.env[FAULT_SETTING] = RUN_START_AFTER_START_NEW
    sync_host.restart()
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 31))

    started = sync_host.post(f"/api/sync/{JOB}/run")

    assert started.status_code == 202, started.text
    answer = started.json()
    assert (answer["instanceId"], answer["status"]) == (f"sync-{JOB}", f"/api/sync/{JOB}")
    body = sync_host.wait_for(run_ended)
    assert body["lock"]["runtimeStatus"] == "Completed"
    assert body["watermark"]["runId"] == answer["runId"]
    assert [run["outcome"] for run in body["lastRuns"]] == ["succeeded"]
    assert body["ticks"].get("started", 0) == 0  # the write that failed
    assert len(set(stored_assets(sfsim))) == 30
    log = sync_host.host.output()
    assert (f"sync tick not counted: job={JOB}, run_id={answer['runId']}, "
            "not_written=") in log
    assert "http request failed" not in log

    # The next start counts its tick: nothing was left held by the one that did not.
    sync_host.host.stop()
    del sync_host.env[FAULT_SETTING]
    sync_host.restart()
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(lambda body: run_ended(body) and len(body["lastRuns"]) == 2)
    assert body["ticks"]["started"] == 1


def test_a_run_over_its_max_run_time_is_terminated_and_the_next_tick_recovers(
    sync_host, sqlite_assets, sfsim
):
    sync_host.host.stop()
    sync_host.env["SYNC_ASSET_CHANGES_MAX_RUN_TIME"] = "3"
    sync_host.restart()
    # 10 pages x 1 s and more: still running after the 3 s max run time and the 3.5 s
    # wait below, however slowly a loaded machine gets there.
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 101))
    sfsim.configure(slow_seconds=1.0)

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    sync_host.wait_for(lambda body: body["lock"]["state"] == "running")
    busy = sync_host.post(f"/api/sync/{JOB}/run")
    assert busy.status_code == 409
    assert busy.headers["Content-Type"].startswith("application/problem+json")
    assert "still running" in busy.json()["detail"]
    assert "tick skipped" in busy.json()["detail"]
    time.sleep(3.5)
    stuck = sync_host.post(f"/api/sync/{JOB}/run")
    assert stuck.status_code == 409
    assert "exceeded the max run time" in stuck.json()["detail"]
    body = sync_host.wait_for(lambda body: body["lock"]["runtimeStatus"] == "Terminated")
    assert body["lastRuns"][0]["outcome"] == "terminated"
    assert "exceeded the max run time of 3 s" in body["lastRuns"][0]["error"]
    assert (body["ticks"]["skippedBusy"], body["ticks"]["terminated"]) == (1, 1)
    assert "previous run" in sync_host.host.output()

    sfsim.configure(slow_seconds=0)
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(
        lambda body: run_ended(body) and body["lastRuns"][0]["outcome"] != "terminated"
    )
    assert body["lock"]["runtimeStatus"] == "Completed"
    assert [run["outcome"] for run in body["lastRuns"]] == ["succeeded", "terminated"]
    stored = stored_assets(sfsim)
    assert len(stored) == 100 and len(set(stored)) == 100


def test_a_host_killed_mid_run_resumes_and_every_row_arrives_once(
    sync_host, sqlite_assets, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 81))
    sfsim.configure(slow_seconds=0.3)
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    deadline = time.monotonic() + 30
    while len(sfsim.records("Asset")) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    sync_host.host.kill()
    delivered_before_kill = len(sfsim.records("Asset"))
    assert 20 <= delivered_before_kill < 80

    sfsim.configure(slow_seconds=0)
    sync_host.restart()
    body = sync_host.wait_for(run_ended, timeout=90)
    assert body["lock"]["runtimeStatus"] == "Completed", body
    assert body["lastRuns"][0]["outcome"] == "succeeded"
    stored = stored_assets(sfsim)
    assert len(stored) == 80 and len(set(stored)) == 80


def test_a_sink_failing_as_a_whole_is_retried_then_fails_the_run_watermark_untouched(
    sync_host, sqlite_assets, sfsim
):
    sync_host.host.stop()
    sync_host.env.update(SALESFORCE_MAX_RETRIES="1", SALESFORCE_RETRY_BACKOFF="0.01",
                         SYNC_PAGE_ATTEMPTS="3")
    sync_host.restart()
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 21))
    sfsim.configure(error_rate_5xx=1.0)

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended)

    assert body["lock"]["runtimeStatus"] == "Failed"
    run = body["lastRuns"][0]
    assert run["outcome"] == "failed" and run["rows"] == 0
    assert "sync job 'asset-changes'" in run["error"] and "unavailable" in run["error"]
    assert body["watermark"]["cursor"] == "1900-01-01T00:00:00"
    assert body["watermark"]["key"] is None
    # Three tries of the first page, each a login or upsert answered 503.
    assert sync_host.host.output().count("Functions.sync_pages") >= 3


def test_a_missing_view_fails_the_run_with_a_clear_message(sync_host, sqlite_assets):
    sync_host.host.stop()
    sync_host.env["SYNC_ASSET_CHANGES_SOURCE_VIEW"] = "no_such_changes_view"
    sync_host.restart()

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended)

    assert body["lock"]["runtimeStatus"] == "Failed"
    error = body["lastRuns"][0]["error"]
    assert error.startswith("sync job 'asset-changes': SOURCE_RELATION_MISSING")
    assert "no_such_changes_view" in error
    assert body["watermark"]["stored"] is False


def test_the_timer_runs_the_job_tick_after_tick(sync_host, sqlite_assets, sfsim):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 31))
    sync_host.host.stop()
    sync_host.env["SYNC_ASSET_CHANGES_SCHEDULE"] = "*/2 * * * * *"
    sync_host.restart()

    sync_host.wait_for(lambda body: body["ticks"].get("started", 0) >= 1 and run_ended(body))
    assert len(set(stored_assets(sfsim))) == 30
    sqlite_assets.insert([(31, BASE + timedelta(seconds=1))])
    body = sync_host.wait_for(lambda body: body["watermark"]["key"] == [31] and run_ended(body))
    assert body["ticks"]["started"] >= 2
    assert all(run["outcome"] == "succeeded" for run in body["lastRuns"])
    assert len(set(stored_assets(sfsim))) == 31
    assert "Functions.sync_tick_asset_changes" in sync_host.host.output()


def test_no_start_sooner_than_the_min_interval_after_the_previous_start(
    sync_host, sqlite_assets
):
    sync_host.host.stop()
    sync_host.env["SYNC_ASSET_CHANGES_MIN_INTERVAL"] = "30"
    sync_host.restart()
    sqlite_assets.insert([(1, BASE)])

    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    body = sync_host.wait_for(run_ended)
    assert body["lock"]["state"] == "min_interval"
    again = sync_host.post(f"/api/sync/{JOB}/run")
    assert again.status_code == 409
    assert "min interval of 30 s" in again.json()["detail"]
    assert sync_host.status()["ticks"]["skippedHeld"] == 1


def test_a_disabled_job_is_not_started_and_says_why(sync_host, sqlite_assets, sfsim):
    sync_host.host.stop()
    sync_host.env["SYNC_ASSET_CHANGES_ENABLED"] = "false"
    sync_host.restart()
    sqlite_assets.insert([(1, BASE)])

    refused = sync_host.post(f"/api/sync/{JOB}/run")

    assert refused.status_code == 409
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert "disabled" in refused.json()["detail"]
    body = sync_host.status()
    assert body["enabled"] is False and body["lock"]["state"] == "disabled"
    assert body["lastRuns"] == [] and stored_assets(sfsim) == []


def test_a_run_terminated_through_the_durable_api_is_recorded_as_ended_by_the_next_tick(
    sync_host, sqlite_assets, sfsim
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 101))
    sfsim.configure(slow_seconds=1.0)
    assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
    sync_host.wait_for(lambda body: body["lock"]["state"] == "running")

    terminated = requests.post(
        sync_host.host.url(f"/runtime/webhooks/durabletask/instances/sync-{JOB}/terminate"),
        params={"reason": "operator", "code": sync_host.host.master_key}, timeout=30)
    assert terminated.status_code == 202
    sync_host.wait_for(lambda body: body["lock"]["runtimeStatus"] == "Terminated")
    sfsim.configure(slow_seconds=0)
    sync_host.post(f"/api/sync/{JOB}/run")  # a tick, whatever it decides

    body = sync_host.wait_for(lambda body: body["lastRuns"][-1]["outcome"] != "running")
    ended = body["lastRuns"][-1]
    assert ended["outcome"] == "terminated" and ended["endedAt"]
    assert "without recording the run's end" in ended["error"]


def test_the_sinks_own_authorization_echoed_in_a_400_stays_out_of_every_record(
    sync_host, sqlite_assets, azurite
):
    secret = "sink-credential-" + uuid.uuid4().hex
    authorization = f"ApiKey {secret}"

    def echo_headers(environ, start_response):
        headers = dict(Request(environ).headers)
        body = (f"bad request, you sent {json.dumps(headers)}\n"
                + "\n".join(f"{name}: {value}" for name, value in headers.items()))
        return Response(body, status=400)(environ, start_response)

    server = make_server("127.0.0.1", 0, echo_headers, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sync_host.host.stop()
        sync_host.env.update(
            SYNC_ASSET_CHANGES_SINK="http",
            SYNC_ASSET_CHANGES_HTTP_URL=f"http://127.0.0.1:{server.server_port}/api/assets",
            SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION=authorization,
        )
        sync_host.restart()
        sqlite_assets.insert([(1, BASE)])

        assert sync_host.post(f"/api/sync/{JOB}/run").status_code == 202
        body = sync_host.wait_for(run_ended)
    finally:
        server.shutdown()

    assert body["lock"]["runtimeStatus"] == "Failed"
    error = body["lastRuns"][0]["error"]
    assert "HTTP_400" in error and "bad request, you sent" in error
    runs = TableServiceClient.from_connection_string(azurite.connection_string) \
        .get_table_client(sync_host.env["SYNC_RUNS_TABLE"]).list_entities()
    history = requests.get(
        sync_host.host.url(f"/runtime/webhooks/durabletask/instances/sync-{JOB}"),
        params={"showHistory": "true", "showHistoryOutput": "true", "showInput": "true",
                "code": sync_host.host.master_key}, timeout=30,
    )
    assert history.status_code == 200, history.text
    assert "HTTP_400" in history.text
    for where, text in (("runs table", json.dumps([dict(row) for row in runs], default=str)),
                        ("status answer", json.dumps(body)),
                        ("orchestration history", history.text),
                        ("log", sync_host.host.output())):
        assert secret not in text, f"the sink's Authorization leaked into the {where}"
