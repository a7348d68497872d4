"""The admin API, disabled functions, functionTimeout and CORS, as a user meets them."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devhost.testing import RunningHost
from tests.devhost.conftest import sample_app

LOCAL_SETTINGS = {
    "IsEncrypted": False,
    "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobs.switched_off.Disabled": "true",
        "AzureWebJobs.switched_off_tick.Disabled": "1",
    },
    "Host": {"CORS": "https://console.example, http://localhost:3000"},
}


@pytest.fixture
def admin_host(start_devhost: Callable[..., RunningHost], tmp_path: Path):
    app = tmp_path / "adminapp"
    shutil.copytree(sample_app("admin_api"), app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "local.settings.json").write_text(json.dumps(LOCAL_SETTINGS))
    journal = tmp_path / "journal.jsonl"
    host = start_devhost(app, env={"ADMIN_JOURNAL": str(journal)})
    return host, journal


def journal_entries(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)


def test_run_a_timer_function_now(admin_host):
    host, journal = admin_host
    url = host.url("/admin/functions/yearly_report")
    master = {"x-functions-key": host.master_key}

    accepted = requests.post(url, headers=master, json={"input": ""}, timeout=10)
    wait_until(lambda: len(journal_entries(journal)) >= 1)
    disabled = requests.post(host.url("/admin/functions/switched_off_tick"), headers=master,
                             json={"input": ""}, timeout=10)
    wait_until(lambda: len(journal_entries(journal)) >= 2)
    no_key = requests.post(url, json={"input": ""}, timeout=10)
    function_key = requests.post(url, headers={"x-functions-key": host.function_key},
                                 json={"input": ""}, timeout=10)
    no_body = requests.post(url, headers=master, timeout=10)
    unknown = requests.post(host.url("/admin/functions/nothing"), headers=master,
                            json={"input": ""}, timeout=10)
    not_a_timer = requests.post(host.url("/admin/functions/hello"), headers=master,
                                json={"input": ""}, timeout=10)

    assert (accepted.status_code, accepted.text) == (202, "")
    assert disabled.status_code == 202  # an explicit run of a disabled timer still runs
    entries = journal_entries(journal)
    assert [(e["function"], e["past_due"]) for e in entries] == [
        ("yearly_report", False), ("switched_off_tick", False)]
    assert (no_key.status_code, function_key.status_code) == (401, 401)
    assert no_body.status_code == 400
    assert unknown.status_code == 404
    assert not_a_timer.status_code == 400
    assert not_a_timer.json()["code"] == "NOT_A_TIMER_FUNCTION"
    assert "Executed 'Functions.yearly_report' (Succeeded" in host.output()


def test_ping_and_the_host_status_body(admin_host):
    host, _ = admin_host

    ping = requests.get(host.url("/admin/host/ping"), timeout=10)
    ping_post = requests.post(host.url("/admin/host/ping"), timeout=10)
    status = requests.get(host.url("/admin/host/status"),
                          headers={"x-functions-key": host.master_key}, timeout=10)
    refused = requests.get(host.url("/admin/host/status"), timeout=10)

    assert (ping.status_code, ping.text, ping_post.status_code) == (200, "", 200)
    assert status.status_code == 200
    body = status.json()
    assert body["state"] == "Running"
    assert body["id"] == "adminapp"
    assert body["version"].startswith("4.")
    assert isinstance(body["processUptime"], int) and body["processUptime"] > 0
    assert {"versionDetails", "instanceId", "computerName", "platformVersion",
            "functionAppContentEditingState"} <= set(body)
    assert refused.status_code == 401


def test_disabled_functions_do_not_run(admin_host):
    host, journal = admin_host

    switched_off = requests.get(host.url("/api/switched-off"), timeout=10)
    hello = requests.get(host.url("/api/hello"), timeout=10)
    time.sleep(2.5)  # switched_off_tick's schedule fires every second when enabled

    assert switched_off.status_code == 404
    assert hello.text == "hello"
    assert journal_entries(journal) == []
    listed = [line for line in host.output().splitlines() if "switched_off:" in line]
    assert len(listed) == 1
    assert listed[0].endswith("(disabled by AzureWebJobs.switched_off.Disabled)")


def test_function_timeout_fails_the_execution_with_one_line(admin_host):
    host, _ = admin_host

    slow_async = requests.get(host.url("/api/slow-async"), timeout=20)
    slow_sync = requests.get(host.url("/api/slow-sync"), timeout=20)

    assert (slow_async.status_code, slow_sync.status_code) == (500, 500)
    output = host.output()
    for name in ("slow_async", "slow_sync"):
        lines = [line for line in output.splitlines() if f"Functions.{name}" in line]
        assert len(lines) == 1, lines
        assert "(Failed" in lines[0]
        assert "Timeout value of 00:00:01 exceeded by function" in lines[0]
    assert "Traceback" not in output


def test_an_expected_refusal_logs_one_line_and_a_bug_its_traceback_once(admin_host):
    host, _ = admin_host

    refused = requests.get(host.url("/api/refuse"), timeout=10)
    crashed = requests.get(host.url("/api/crash"), timeout=10)

    assert (refused.status_code, crashed.status_code) == (409, 500)
    output = host.output()
    refusal = [line for line in output.splitlines() if "Functions.refuse" in line]
    assert len(refusal) == 1 and "Status=409" in refusal[0]
    assert "(Succeeded" in refusal[0]
    assert output.count("Traceback") == 1
    assert "Executed 'Functions.crash' (Failed" in output
    assert "KeyError: 'missing'" in output


def test_cors_follows_the_local_settings(admin_host):
    host, _ = admin_host
    url = host.url("/api/hello")

    allowed = requests.get(url, headers={"Origin": "https://console.example"}, timeout=10)
    other = requests.get(url, headers={"Origin": "https://elsewhere.example"}, timeout=10)
    preflight = requests.options(url, headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-functions-key"}, timeout=10)

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert allowed.text == "hello"
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.text == "hello"  # CORS is the browser's check; the host still answers
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type,x-functions-key"
