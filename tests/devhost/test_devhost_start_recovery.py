"""A start whose host dies between the instance row and the start message still runs.

The host is stopped at the named crash point `engine.start_instance.before_start_message`
(DEVHOST_CRASH_AT), which leaves the instance Pending without its start message: the next
host start-up, or a command for the instance on the leading host, must send it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
import requests

from devhost.engine.crash_points import CRASH_EXIT_CODE, CRASH_SETTING, START_BEFORE_MESSAGE
from devhost.testing import RunningHost
from tests.devhost.conftest import sample_app

WEBHOOK = "/runtime/webhooks/durabletask"
APP = sample_app("durable_start_recovery")


@pytest.fixture
def hub_env(azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string,
            "START_RECOVERY_HUB": "Lost" + uuid.uuid4().hex[:12]}


def crash_during_start(host: RunningHost, instance_id: str) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.post(
            host.url(f"{WEBHOOK}/orchestrators/waits_for_go/{instance_id}"),
            params={"code": host.master_key}, json="payload", timeout=30,
        )
    assert host.process.wait(timeout=30) == CRASH_EXIT_CODE
    assert f"crash point {START_BEFORE_MESSAGE} reached" in host.output()


def wait_for_status(host: RunningHost, instance_id: str, wanted: str,
                    timeout: float = 45) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = requests.get(host.url(f"{WEBHOOK}/instances/{instance_id}"),
                            params={"code": host.master_key}, timeout=10).json()
        if body.get("runtimeStatus") == wanted:
            return body
        time.sleep(0.1)
    pytest.fail(f"instance {instance_id} never reached {wanted}: {body}")


def test_a_start_lost_in_a_crash_runs_after_the_restart(
    start_devhost: Callable[..., RunningHost], hub_env: dict[str, str],
):
    crashing = start_devhost(APP, env={**hub_env, CRASH_SETTING: START_BEFORE_MESSAGE})
    crash_during_start(crashing, "lost-1")

    restarted = start_devhost(APP, env=hub_env)
    wait_for_status(restarted, "lost-1", "Running")
    raised = requests.post(
        restarted.url(f"{WEBHOOK}/instances/lost-1/raiseEvent/go"),
        params={"code": restarted.master_key}, json="went", timeout=10,
    )
    done = wait_for_status(restarted, "lost-1", "Completed")

    assert raised.status_code == 202
    assert (done["input"], done["output"]) == ("payload", "went")
    assert "sending it again" in restarted.output()


def test_terminate_and_purge_reach_an_instance_whose_start_was_lost(
    start_devhost: Callable[..., RunningHost], hub_env: dict[str, str],
):
    leader = start_devhost(APP, env=hub_env)
    standby = start_devhost(APP, env={**hub_env, CRASH_SETTING: START_BEFORE_MESSAGE})
    crash_during_start(standby, "lost-2")
    key = {"code": leader.master_key}
    instance_url = leader.url(f"{WEBHOOK}/instances/lost-2")

    terminate = requests.post(f"{instance_url}/terminate", params={**key, "reason": "stuck"},
                              timeout=10)
    terminated = wait_for_status(leader, "lost-2", "Terminated")
    purge = requests.delete(instance_url, params=key, timeout=10)

    assert terminate.status_code == 202
    assert terminated["output"] == "stuck"
    assert (purge.status_code, purge.json()) == (200, {"instancesDeleted": 1})
    assert requests.get(instance_url, params=key, timeout=10).status_code == 404
