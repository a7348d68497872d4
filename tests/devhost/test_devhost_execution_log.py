"""The host's log as a person reads it: one line per execution, naming its instance, and a
traceback only where it helps (see devhost/execution_log.py)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devhost.testing import RunningHost
from tests.devhost.conftest import sample_app

WEBHOOK = "/runtime/webhooks/durabletask"


@pytest.fixture
def client_api_host(start_devhost: Callable[..., RunningHost], azurite,
                    tmp_path: Path) -> RunningHost:
    """The durable_client_api sample on a task hub of its own: the session's in-process
    host serves the sample's hub in the same Azurite and could take its work (and so its
    log lines)."""
    app = tmp_path / "clientapi"
    shutil.copytree(sample_app("durable_client_api"), app,
                    ignore=shutil.ignore_patterns("__pycache__"))
    host_json = json.loads((app / "host.json").read_text())
    host_json["extensions"]["durableTask"]["hubName"] = f"Log{uuid.uuid4().hex[:12]}"
    (app / "host.json").write_text(json.dumps(host_json))
    return start_devhost(app, env={"AzureWebJobsStorage": azurite.connection_string})


def wait_for_status(host: RunningHost, instance_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = requests.get(host.url(f"{WEBHOOK}/instances/{instance_id}"),
                              params={"code": host.master_key}, timeout=10)
        if status.status_code in (200, 202) and status.json()["runtimeStatus"] == wanted:
            return
        time.sleep(0.1)
    pytest.fail(f"{instance_id} never reached {wanted}:\n{host.output()}")


def lines_with(host: RunningHost, text: str) -> list[str]:
    return [line for line in host.output().splitlines() if text in line]


def test_executions_name_their_instance_and_replays_stay_quiet(client_api_host: RunningHost):
    host = client_api_host
    instance_id = f"greet-{uuid.uuid4().hex[:8]}"
    started = requests.post(host.url(f"/api/start/greeting_chain/{instance_id}"),
                            json=["A", "B", "C"], timeout=10)
    assert started.status_code == 202
    wait_for_status(host, instance_id, "Completed")

    activities = lines_with(host, "Executed 'Functions.say_hello'")
    episodes = lines_with(host, "Executed 'Functions.greeting_chain'")

    assert len(activities) == 3
    assert all(f"Instance={instance_id}" in line for line in activities)
    # Four episodes ran (start, then one per activity result); only the last is shown.
    assert len(episodes) == 1
    assert f"Instance={instance_id}" in episodes[0]
    assert episodes[0].endswith(": orchestration completed")


def test_a_refused_start_new_logs_one_line(client_api_host: RunningHost):
    host = client_api_host
    instance_id = f"busy-{uuid.uuid4().hex[:8]}"
    first = requests.post(host.url(f"/api/start-unguarded/approval/{instance_id}"), timeout=10)
    wait_for_status(host, instance_id, "Running")

    second = requests.post(host.url(f"/api/start-unguarded/approval/{instance_id}"), timeout=10)

    assert (first.status_code, second.status_code) == (202, 500)
    refusals = lines_with(host, "Executed 'Functions.start_unguarded' (Failed")
    assert len(refusals) == 1
    assert "start_new refused: An Orchestration instance with the status Running" \
        in refusals[0]
    assert "Traceback" not in host.output()


def test_an_orchestrator_refusal_is_one_line_and_a_bug_keeps_its_traceback(
    client_api_host: RunningHost,
):
    host = client_api_host
    refused_id = f"refused-{uuid.uuid4().hex[:8]}"
    requests.post(host.url(f"/api/start/refusing/{refused_id}"), timeout=10)
    wait_for_status(host, refused_id, "Failed")
    refusal_output = host.output()
    buggy_id = f"buggy-{uuid.uuid4().hex[:8]}"
    requests.post(host.url(f"/api/start/buggy/{buggy_id}"), timeout=10)
    wait_for_status(host, buggy_id, "Failed")
    bug_output = host.output()[len(refusal_output):]

    refusal = [line for line in refusal_output.splitlines() if "Functions.refusing" in line]
    assert len(refusal) == 1
    assert f"Instance={refused_id}" in refusal[0]
    assert ("ReportRefused: this report was sent already; start a new one (raised at "
            in refusal[0])
    source = (sample_app("durable_client_api") / "function_app.py").read_text().splitlines()
    # The raise site is named relative to the app folder (here the test's copy).
    raised_at = next(n for n, line in enumerate(source, 1) if "raise ReportRefused" in line)
    assert refusal[0].endswith(f"(raised at function_app.py:{raised_at})")
    assert "Traceback" not in refusal_output
    assert "$OutOfProcData$" not in refusal_output + bug_output
    assert bug_output.count("Traceback") == 1
    assert "KeyError: 'missing'" in bug_output
    assert "The above exception was the direct cause" not in bug_output
