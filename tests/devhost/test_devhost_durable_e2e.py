"""Durable Functions end to end: sample apps on `python -m devhost`, the real engine, Azurite.

Each test drives an app the way a user would (HTTP calls, the management URLs the host
hands out) and asserts what the user sees: status codes, outputs, timings, retry counts.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import requests

from devhost.testing import RunningHost, free_port
from tests.devhost.conftest import sample_app

TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")


@pytest.fixture
def durable_env(azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string}


def wait_until_done(status_url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = requests.get(status_url, timeout=10)
        body = response.json()
        if body.get("runtimeStatus") in TERMINAL:
            assert response.status_code == 200
            return body
        assert response.status_code == 202
        time.sleep(0.1)
    pytest.fail(f"orchestration did not finish within {timeout}s: {body}")


def read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # A line still being written by the host has no newline yet: it is read next time.
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def test_function_chaining_over_http_with_a_function_key(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_chaining"), env=durable_env)
    url = host.url("/api/orchestrators/itinerary")

    assert requests.post(url, json=["Lima"], timeout=10).status_code == 401
    started = requests.post(
        url, params={"code": host.function_key}, json=["Lima", "Cusco", "Puno"], timeout=10
    )

    assert started.status_code == 202
    done = wait_until_done(started.json()["statusQueryGetUri"])
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["booked Lima", "booked Cusco", "booked Puno"]
    output = host.output()
    assert output.count("Executed 'Functions.book_leg' (Succeeded") == 3


def test_fan_out_fan_in_is_bounded_by_max_concurrent_activity_functions(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_fan_out"), env=durable_env)

    response = requests.post(host.url("/api/fan-out/12"), timeout=60)

    assert response.status_code == 200
    result = response.json()
    assert result["sum"] == sum(n * n for n in range(1, 13))
    # host.json maxConcurrentActivityFunctions = 3: activities overlap, but never more than 3.
    assert 2 <= result["max_parallel"] <= 3


def test_retries_run_the_activity_until_it_succeeds_or_attempts_run_out(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_retry"), env=durable_env)
    url = host.url("/api/start/flaky_with_retries")

    recovering = requests.post(url, json={"max_attempts": 3, "fail_times": 2}, timeout=10)
    exhausted = requests.post(url, json={"max_attempts": 2, "fail_times": 5}, timeout=10)

    succeeded = wait_until_done(recovering.json()["statusQueryGetUri"])
    failed = wait_until_done(exhausted.json()["statusQueryGetUri"])
    assert succeeded["runtimeStatus"] == "Completed"
    assert succeeded["output"] == {"succeeded_on_attempt": 3}
    assert failed["runtimeStatus"] == "Failed"
    assert "attempt 2 failed" in json.dumps(failed["output"])
    assert host.output().count("Executed 'Functions.flaky_call' (Failed") == 2 + 2


def test_monitor_with_durable_timers_and_continue_as_new(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_monitor"), env=durable_env)

    started = requests.post(host.url("/api/monitor"), timeout=10)
    done = wait_until_done(started.json()["statusQueryGetUri"], timeout=30)

    assert done["runtimeStatus"] == "Completed"
    assert done["output"]["report"] == "finished after 3 polls"
    polls = [datetime.fromisoformat(moment) for moment in done["output"]["polls"]]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(polls)]
    # Each 1 s durable timer fired no earlier than its fire time.
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert done["customStatus"] == {"polls": 3}


def test_external_event_wins_over_the_timeout_timer(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_human_interaction"), env=durable_env)

    waiting = requests.post(host.url("/api/requests"), json={"timeout_seconds": 30}, timeout=10)
    assert waiting.status_code == 202, host.output()[-3000:]
    instance_id = waiting.json()["id"]
    status_url = waiting.json()["statusQueryGetUri"]
    deadline = time.monotonic() + 30
    while requests.get(status_url, timeout=10).json().get("runtimeStatus") != "Running":
        assert time.monotonic() < deadline, "the approval workflow never started waiting"
        time.sleep(0.1)
    approved = requests.post(host.url(f"/api/requests/{instance_id}/approve"), timeout=10)
    ignored = requests.post(host.url("/api/requests"), json={"timeout_seconds": 1}, timeout=10)

    assert approved.status_code == 202
    assert wait_until_done(waiting.json()["statusQueryGetUri"])["output"] == "approved"
    started = time.monotonic()
    assert wait_until_done(ignored.json()["statusQueryGetUri"])["output"] == "escalated"
    assert time.monotonic() - started < 10


def test_sub_orchestrations_from_a_blueprint(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_sub_orchestration"), env=durable_env)

    response = requests.post(
        host.url("/api/orders"),
        json=[{"order": "A-1", "amount": 10}, {"order": "B-2", "amount": 25}],
        timeout=60,
    )

    assert response.status_code == 200
    assert response.json() == ["captured 10 for A-1", "captured 25 for B-2"]


def test_timer_started_singleton_is_refused_while_busy(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str], tmp_path: Path
):
    journal = tmp_path / "singleton.jsonl"
    host = start_devhost(
        sample_app("durable_singleton_timer"),
        env={**durable_env, "SINGLETON_JOURNAL": str(journal)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = [entry["event"] for entry in read_journal(journal)]
        if events.count("started") >= 2:
            break
        time.sleep(0.2)
    host.stop()
    events = [entry["event"] for entry in read_journal(journal)]

    # Started, refused while the 3 s run is busy, started again once it completed.
    first = events.index("started")
    second = events.index("started", first + 1)
    assert "refused" in events[first:second]
    refusal = next(entry for entry in read_journal(journal) if entry["event"] == "refused")
    assert "already exists" in refusal["detail"]


def test_host_killed_mid_orchestration_finishes_it_after_restart(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str], tmp_path: Path
):
    journal = tmp_path / "crash.jsonl"
    env = {**durable_env, "CRASH_JOURNAL": str(journal)}
    first = start_devhost(sample_app("durable_crash_recovery"), env=env)
    started = requests.post(first.url("/api/start"), timeout=10).json()
    deadline = time.monotonic() + 30
    while {"step": "second", "event": "started"} not in read_journal(journal):
        assert time.monotonic() < deadline, f"step two never started: {read_journal(journal)}"
        time.sleep(0.1)
    first.kill()

    second = start_devhost(sample_app("durable_crash_recovery"), env=env)
    status_url = second.url(
        f"/runtime/webhooks/durabletask/instances/{started['id']}?code={second.master_key}"
    )
    done = wait_until_done(status_url, timeout=60)

    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["first", "second", "third"]
    runs = read_journal(journal)
    assert runs.count({"step": "first", "event": "started"}) == 1
    assert runs.count({"step": "second", "event": "started"}) == 2  # at-least-once
    assert runs.count({"step": "third", "event": "started"}) == 1


def test_call_http_reaches_endpoints_and_returns_status_headers_and_content(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_http"), env=durable_env)

    started = requests.post(
        host.url("/api/start/weather_report"), json={"base": host.base_url}, timeout=10
    )
    done = wait_until_done(started.json()["statusQueryGetUri"])

    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {
        "city": "Oslo",
        "station": "north",
        "stored_status": 201,
        # The SDK sends dict content as JSON text; .NET's StringContent labels it text/plain.
        "stored": {
            "received": '{"celsius": 21}',
            "content_type": "text/plain; charset=utf-8",
            "trace": started.json()["id"],
        },
        # A 404 is an answer the orchestrator reads, not a failure.
        "missing_status": 404,
    }
    assert host.output().count("Executed 'Functions.forecast' (Succeeded") == 1


def test_call_http_to_an_endpoint_that_does_not_answer_fails_the_task(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_http"), env=durable_env)
    nobody_listens = f"http://127.0.0.1:{free_port()}/api/anything"

    started = requests.post(
        host.url("/api/start/call_unreachable"), json={"url": nobody_listens}, timeout=10
    )
    done = wait_until_done(started.json()["statusQueryGetUri"])

    assert done["runtimeStatus"] == "Completed"
    assert done["output"].startswith(
        "call failed: Activity function 'BuiltIn::HttpActivity' failed: ClientConnectorError"
    ), done["output"]


def test_durable_entities_fail_loudly_with_the_reason(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app("durable_entity"), env=durable_env)
    assert "function counter is a durable entity" in host.output()

    started = requests.post(host.url("/api/start"), timeout=10)
    done = wait_until_done(started.json()["statusQueryGetUri"])
    signalled = requests.post(host.url("/api/signal"), timeout=10)

    assert done["runtimeStatus"] == "Failed"
    assert "durable entities (call_entity) are not supported" in done["output"]
    # The SDK's client raises on the API's 501; the host says why.
    assert signalled.status_code == 500
    assert "unexpected status code 501" in host.output()
    assert "durable entities are not supported by devhost" in host.output()
