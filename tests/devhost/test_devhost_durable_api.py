"""The durable client binding and the built-in durable HTTP API.

Each test runs on the in-memory stand-in engine (which isolates the host shell) and on
the real engine with Azurite: the SDK's DurableOrchestrationClient talks to the host's RPC
endpoint, and the public `/runtime/webhooks/durabletask` API answers with the status
codes and bodies of the real one.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.devhost.conftest import InProcessHost

WEBHOOK = "/runtime/webhooks/durabletask"


def wait_for_status(host: InProcessHost, instance_id: str, wanted: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = requests.get(host.url(f"/api/status/{instance_id}"), timeout=10).json()
        if body.get("runtimeStatus") == wanted:
            return body
        time.sleep(0.05)
    pytest.fail(f"instance {instance_id} never reached {wanted}: {body}")


def test_start_returns_check_status_response_with_management_urls(
    durable_host: InProcessHost,
):
    response = requests.post(
        durable_host.url("/api/start/greeting_chain"), json=["Oslo"], timeout=10
    )

    assert response.status_code == 202
    body = response.json()
    instance_id = body["id"]
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"
    assert set(body) >= {
        "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
        "purgeHistoryDeleteUri", "rewindPostUri", "suspendPostUri", "resumePostUri",
    }
    assert body["statusQueryGetUri"].startswith(
        f"{durable_host.base_url}{WEBHOOK}/instances/{instance_id}?taskHub=ClientApiHub"
    )
    assert "{eventName}" in body["sendEventPostUri"]
    done = wait_for_status(durable_host, instance_id, "Completed")
    assert done["output"] == ["Hello Oslo!"]
    assert done["customStatus"] == {"greeted": 1}
    # The SDK's client sends its input JSON-encoded twice; Azure shows it that way too.
    assert done["input"] == '["Oslo"]'

    # The management URL works as given (it carries the system key).
    status = requests.get(body["statusQueryGetUri"], timeout=10)
    assert status.status_code == 200
    assert status.json()["runtimeStatus"] == "Completed"
    assert status.json()["output"] == ["Hello Oslo!"]
    assert status.json()["createdTime"].endswith("Z")


def test_wait_for_completion_returns_the_output(durable_host: InProcessHost):
    response = requests.post(
        durable_host.url("/api/run/greeting_chain"), json=["A", "B"], timeout=20
    )

    assert response.status_code == 200
    assert response.json() == ["Hello A!", "Hello B!"]


def test_fixed_id_start_is_refused_while_the_instance_is_busy(durable_host: InProcessHost):
    instance_id = f"singleton-{uuid.uuid4().hex[:8]}"
    first = requests.post(durable_host.url(f"/api/start/approval/{instance_id}"), timeout=10)
    second = requests.post(
        durable_host.url(f"/api/start/approval/{instance_id}"), timeout=10
    )

    assert first.status_code == 202
    assert first.json()["id"] == instance_id
    assert second.status_code == 409
    assert "already exists" in second.json()["refused"]


def test_external_event_completes_a_waiting_orchestration(durable_host: InProcessHost):
    instance_id = requests.post(
        durable_host.url("/api/start/approval"), timeout=10
    ).json()["id"]
    wait_for_status(durable_host, instance_id, "Running")

    raised = requests.post(
        durable_host.url(f"/api/raise/{instance_id}/Approval"),
        json={"name": "Grace"},
        timeout=10,
    )

    assert raised.status_code == 202
    assert wait_for_status(durable_host, instance_id, "Completed")["output"] == (
        "approved by Grace"
    )
    again = requests.post(
        durable_host.url(f"/api/raise/{instance_id}/Approval"), json={}, timeout=10
    )
    assert again.status_code == 409
    assert "is gone" in again.json()["refused"]


def test_unknown_instance_and_unknown_orchestrator(durable_host: InProcessHost):
    missing = requests.get(durable_host.url("/api/status/no-such-instance"), timeout=10)
    refused = requests.post(durable_host.url("/api/start/no_such_orchestrator"), timeout=10)

    assert missing.status_code == 404
    assert missing.json() == {"exists": False}
    assert refused.status_code == 409
    assert "no_such_orchestrator" in refused.json()["refused"]


def test_failed_activity_fails_the_orchestration(durable_host: InProcessHost):
    instance_id = requests.post(
        durable_host.url("/api/start/failing_chain"), timeout=10
    ).json()["id"]

    failed = wait_for_status(durable_host, instance_id, "Failed")
    instance_url = durable_host.url(f"{WEBHOOK}/instances/{instance_id}")
    key = {"code": durable_host.master_key}
    plain = requests.get(instance_url, params=key, timeout=10)
    as_error = requests.get(
        instance_url, params={**key, "returnInternalServerErrorOnFailure": "true"}, timeout=10
    )
    with_history = requests.get(instance_url, params={**key, "showHistory": "true"}, timeout=10)

    assert "the activity exploded" in str(failed["output"])
    assert (plain.status_code, plain.json()["runtimeStatus"]) == (200, "Failed")
    assert as_error.status_code == 500
    assert "historyEvents" not in plain.json()
    failures = [event for event in with_history.json()["historyEvents"]
                if event["EventType"] == "TaskFailed"]
    assert [event["FunctionName"] for event in failures] == ["explode"]
    assert "the activity exploded" in failures[0]["Reason"]


def test_terminate_list_and_purge_through_the_client(durable_host: InProcessHost):
    prefix = f"batch-{uuid.uuid4().hex[:6]}-"
    for number in range(3):
        requests.post(durable_host.url(f"/api/start/approval/{prefix}{number}"), timeout=10)
    for number in range(3):
        wait_for_status(durable_host, f"{prefix}{number}", "Running")

    terminated = requests.post(durable_host.url(f"/api/terminate/{prefix}0"), timeout=10)
    wait_for_status(durable_host, f"{prefix}0", "Terminated")
    running = requests.get(
        durable_host.url("/api/instances"),
        params={"status": "Running", "prefix": prefix},
        timeout=10,
    ).json()
    everything = requests.get(durable_host.url("/api/instances"), timeout=10).json()
    purged = requests.delete(durable_host.url(f"/api/purge/{prefix}0"), timeout=10)
    purged_again = requests.delete(durable_host.url(f"/api/purge/{prefix}0"), timeout=10)

    assert terminated.status_code == 202
    assert running == [f"{prefix}1", f"{prefix}2"]
    assert {f"{prefix}0", f"{prefix}1", f"{prefix}2"} <= set(everything)
    assert purged.json() == {"instancesDeleted": 1}
    assert purged_again.json() == {"instancesDeleted": 0}


def test_webhook_api_needs_a_key_and_answers_like_azure(durable_host: InProcessHost):
    key = {"code": durable_host.master_key}
    instance_id = requests.post(
        durable_host.url("/api/start/approval"), timeout=10
    ).json()["id"]
    wait_for_status(durable_host, instance_id, "Running")
    instance_url = durable_host.url(f"{WEBHOOK}/instances/{instance_id}")

    assert requests.get(instance_url, timeout=10).status_code == 401
    running = requests.get(instance_url, params=key, timeout=10)
    assert running.status_code == 202
    assert running.headers["Retry-After"] == "5"
    assert "Location" in running.headers
    assert requests.get(
        durable_host.url(f"{WEBHOOK}/instances/nope"), params=key, timeout=10
    ).status_code == 404
    not_json = requests.post(
        f"{instance_url}/raiseEvent/Approval", params=key, data="x",
        headers={"Content-Type": "text/plain"}, timeout=10,
    )
    assert not_json.status_code == 400
    not_terminal = requests.delete(instance_url, params=key, timeout=10)
    assert not_terminal.status_code == 412
    terminate = requests.post(
        f"{instance_url}/terminate", params={**key, "reason": "done"}, timeout=10
    )
    assert terminate.status_code == 202
    # Termination is queued, as in Azure; once done the instance is gone for new commands.
    terminated = wait_for_status(durable_host, instance_id, "Terminated")
    assert terminated["output"] == "done"
    assert requests.post(f"{instance_url}/terminate", params=key, timeout=10).status_code == 410
    terminated_status = requests.get(instance_url, params=key, timeout=10)
    assert terminated_status.status_code == 200
    assert terminated_status.json()["runtimeStatus"] == "Terminated"
    rewind = requests.post(f"{instance_url}/rewind", params=key, timeout=10)
    assert rewind.status_code == 412
    assert requests.post(
        durable_host.url(f"{WEBHOOK}/instances/"), params=key, timeout=10
    ).status_code == 404
    missing_from = requests.delete(
        durable_host.url(f"{WEBHOOK}/instances/"), params=key, timeout=10
    )
    assert missing_from.status_code == 400


def test_webhook_start_with_an_invalid_instance_id_is_a_bad_request(
    durable_host: InProcessHost,
):
    key = {"code": durable_host.master_key}
    too_long = "x" * 257

    started = requests.post(
        durable_host.url(f"{WEBHOOK}/orchestrators/approval/{too_long}"),
        params=key, json={}, timeout=10,
    )

    assert started.status_code == 400
    assert "1-256 characters" in started.text
    missing = requests.get(durable_host.url(f"{WEBHOOK}/instances/{too_long}"), params=key,
                           timeout=10)
    assert missing.status_code == 404


def test_webhook_start_and_list_with_paging(durable_host: InProcessHost):
    key = {"code": durable_host.master_key}
    prefix = f"page-{uuid.uuid4().hex[:6]}-"
    for number in range(5):
        started = requests.post(
            durable_host.url(f"{WEBHOOK}/orchestrators/approval/{prefix}{number}"),
            params=key, json={"n": number}, timeout=10,
        )
        assert started.status_code == 202
        assert started.json()["id"] == f"{prefix}{number}"

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        page = requests.get(
            durable_host.url(f"{WEBHOOK}/instances"),
            params={**key, "instanceIdPrefix": prefix, "top": "2", "showInput": "true"},
            headers=headers, timeout=10,
        )
        assert page.status_code == 200
        seen += [item["instanceId"] for item in page.json()]
        assert all(item["input"] is not None for item in page.json())
        pages += 1
        token = page.headers.get("x-ms-continuation-token")
        if not token:
            break

    assert sorted(seen) == [f"{prefix}{number}" for number in range(5)]
    assert pages == 3
    refused = requests.post(
        durable_host.url(f"{WEBHOOK}/orchestrators/approval/{prefix}0"),
        params=key, timeout=10,
    )
    assert refused.status_code == 409
    unknown = requests.post(
        durable_host.url(f"{WEBHOOK}/orchestrators/nothing_here"), params=key, timeout=10
    )
    assert unknown.status_code == 400
    assert "nothing_here" in unknown.json()["ExceptionMessage"]


def test_suspend_resume_and_restart_through_the_management_urls(
    durable_host: InProcessHost,
):
    started = requests.post(durable_host.url("/api/start/approval"), timeout=10).json()
    instance_id = started["id"]
    wait_for_status(durable_host, instance_id, "Running")

    suspend = requests.post(started["suspendPostUri"].replace("{text}", "maintenance"), timeout=10)
    suspended = requests.get(started["statusQueryGetUri"], timeout=10)
    resume = requests.post(started["resumePostUri"].replace("{text}", "back"), timeout=10)
    resumed = wait_for_status(durable_host, instance_id, "Running")
    restart = requests.post(started["restartPostUri"], timeout=10)

    assert suspend.status_code == 202
    assert (suspended.status_code, suspended.json()["runtimeStatus"]) == (202, "Suspended")
    assert resume.status_code == 202
    assert resumed["runtimeStatus"] == "Running"
    assert restart.status_code == 202
    assert restart.json()["id"] != instance_id
    wait_for_status(durable_host, restart.json()["id"], "Running")


def test_unreadable_bodies_and_foreign_keys_get_problems_not_500(durable_host: InProcessHost):
    key = {"code": durable_host.master_key}
    instance_id = requests.post(durable_host.url("/api/start/approval"), timeout=10).json()["id"]
    wait_for_status(durable_host, instance_id, "Running")
    start_url = durable_host.url(f"{WEBHOOK}/orchestrators/approval")
    event_url = durable_host.url(f"{WEBHOOK}/instances/{instance_id}/raiseEvent/Approval")
    json_type = {"Content-Type": "application/json"}
    deep = "[" * 100_000 + "]" * 100_000

    answers = {
        "start, invalid UTF-8": requests.post(
            start_url, params=key, data=b'"\xff\xfe"', headers=json_type, timeout=10),
        "start, deeply nested": requests.post(
            start_url, params=key, data=deep, headers=json_type, timeout=10),
        "event, invalid UTF-8": requests.post(
            event_url, params=key, data=b'{"name": "\xc3"}', headers=json_type, timeout=10),
        "event, deeply nested": requests.post(
            event_url, params=key, data=deep, headers=json_type, timeout=10),
    }
    foreign_key = requests.get(
        durable_host.url(f"{WEBHOOK}/instances/{instance_id}"), params={"code": "ключ"},
        timeout=10,
    )

    for what, answer in answers.items():
        assert answer.status_code == 400, what
        assert answer.headers["content-type"].startswith("application/problem+json"), what
        assert answer.json()["code"] == "INVALID_JSON", what
    assert "UTF-8" in answers["start, invalid UTF-8"].json()["detail"]
    assert "nested too deeply" in answers["event, deeply nested"].json()["ExceptionMessage"]
    assert foreign_key.status_code == 401
    # Nothing was started or raised: the instance still waits for its event.
    still = requests.get(durable_host.url(f"/api/status/{instance_id}"), timeout=10).json()
    assert still["runtimeStatus"] == "Running"
