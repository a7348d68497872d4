"""The durable HTTP API's answers have the shapes the Durable extension gives.

The extension's `HttpApiHandler` and `DurableClient.GetDurableOrchestrationStatusAsync` are
the reference: history results parsed into JSON, inputs shown unless `showInput=false`,
the instance list with inputs and 100 rows a page, `timeout`/`pollingInterval` on start and
restart. Each test runs on the in-memory engine and on the real engine with Azurite.
"""

from __future__ import annotations

import json
import uuid

import requests

from tests.devhost.conftest import InProcessHost
from tests.devhost.test_devhost_durable_api import WEBHOOK, wait_for_status


def _start(host: InProcessHost, name: str, instance_id: str, body: object = None) -> None:
    """Start through the SDK's client (which encodes the input twice, as orchestrators'
    `get_input` expects) with a fixed instance id."""
    started = requests.post(host.url(f"/api/start/{name}/{instance_id}"), json=body, timeout=10)
    assert started.status_code == 202, started.text


def _history(host: InProcessHost, instance_id: str, **query: str) -> list[dict]:
    answer = requests.get(
        host.url(f"{WEBHOOK}/instances/{instance_id}"),
        params={"code": host.master_key, "showHistory": "true", **query}, timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["historyEvents"])


def test_history_results_are_json_and_inputs_follow_show_input(durable_host: InProcessHost):
    instance_id = f"history-{uuid.uuid4().hex[:8]}"
    _start(durable_host, "greeting_chain", instance_id, ["Oslo"])
    wait_for_status(durable_host, instance_id, "Completed")

    plain = _history(durable_host, instance_id)
    with_output = _history(durable_host, instance_id, showHistoryOutput="true")
    without_input = _history(durable_host, instance_id, showHistoryOutput="true",
                             showInput="false")

    started = next(event for event in plain if event["EventType"] == "ExecutionStarted")
    assert started["FunctionName"] == "greeting_chain"
    # Kept without showHistoryOutput, as the stored text of the start body (the SDK's
    # client posts its input JSON-encoded twice).
    assert started["Input"] == json.dumps('["Oslo"]')
    assert all("Result" not in event for event in plain)
    completed_task = next(e for e in with_output if e["EventType"] == "TaskCompleted")
    assert completed_task["FunctionName"] == "say_hello"
    assert completed_task["Input"] == '"Oslo"'  # the activity's input, from its scheduling
    assert completed_task["Result"] == "Hello Oslo!"  # JSON, not the text '"Hello Oslo!"'
    ended = [e for e in with_output if e["EventType"] == "ExecutionCompleted"]
    assert all(event["Result"] == ["Hello Oslo!"] for event in ended)
    assert all("Input" not in event for event in without_input)
    assert any(event.get("Result") == "Hello Oslo!" for event in without_input)


def test_instance_list_shows_inputs_and_pages_by_100(durable_host: InProcessHost):
    prefix = f"list-{uuid.uuid4().hex[:6]}-"
    for number in range(101):
        _start(durable_host, "approval", f"{prefix}{number:03d}", {"n": number})
    url = durable_host.url(f"{WEBHOOK}/instances")
    query = {"code": durable_host.master_key, "instanceIdPrefix": prefix}

    first = requests.get(url, params=query, timeout=30)
    token = first.headers.get("x-ms-continuation-token")
    second = requests.get(url, params=query, headers={"x-ms-continuation-token": token or ""},
                          timeout=30)
    hidden = requests.get(url, params={**query, "top": "3", "showInput": "false"}, timeout=30)

    assert first.status_code == 200
    assert len(first.json()) == 100
    assert token
    assert first.json()[0]["input"] == '{"n": 0}'
    assert [item["instanceId"] for item in second.json()] == [f"{prefix}100"]
    assert "x-ms-continuation-token" not in second.headers
    assert [item["input"] for item in hidden.json()] == [None, None, None]
    assert hidden.headers["x-ms-continuation-token"]


def test_restart_waits_for_the_new_instance_when_asked(durable_host: InProcessHost):
    key = {"code": durable_host.master_key}
    done_id = f"restart-{uuid.uuid4().hex[:8]}"
    _start(durable_host, "greeting_chain", done_id, ["Bergen"])
    wait_for_status(durable_host, done_id, "Completed")
    waiting_id = f"restart-{uuid.uuid4().hex[:8]}"
    _start(durable_host, "approval", waiting_id)
    restart = durable_host.url(f"{WEBHOOK}/instances/{{}}/restart")

    finished = requests.post(restart.format(done_id),
                             params={**key, "timeout": "30", "pollingInterval": "0.1"},
                             timeout=40)
    still_running = requests.post(restart.format(waiting_id),
                                  params={**key, "timeout": "0.3", "pollingInterval": "0.1"},
                                  timeout=40)
    refused = requests.post(restart.format(done_id),
                            params={**key, "timeout": "1", "pollingInterval": "5"}, timeout=10)

    assert finished.status_code == 200
    assert finished.json() == ["Hello Bergen!"]
    assert still_running.status_code == 202
    assert still_running.json()["id"] != waiting_id
    assert still_running.headers["Location"] == still_running.json()["statusQueryGetUri"]
    assert refused.status_code == 400
    assert "should be bigger than retry timeout" in refused.json()["ExceptionMessage"]
