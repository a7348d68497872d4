"""FUNCTIONS_WORKER_PROCESS_COUNT: activities run in that many worker processes."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devhost.host_config import StartupError, worker_process_count
from devhost.testing import HostStartError, RunningHost, start_host
from shared.crash_points import CRASH_EXIT_CODE, CRASH_SETTING
from tests.devhost.conftest import sample_app
from tests.devhost.test_devhost_durable_e2e import wait_until_done

APP = "durable_worker_processes"
WORKER_CRASH_POINT = "devhost_test.activity.kill_worker"


@pytest.fixture
def durable_env(azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string}


def run(host: RunningHost, orchestrator: str, payload: object, timeout: float = 60) -> dict:
    started = requests.post(host.url(f"/api/start/{orchestrator}"), json=payload, timeout=10)
    assert started.status_code == 202, started.text
    return wait_until_done(started.json()["statusQueryGetUri"], timeout=timeout)


def host_pid(host: RunningHost) -> int:
    return int(requests.get(host.url("/api/pid"), timeout=10).text)


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may not reap orphans at once)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if is_running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize("value", ["0", "11", "two", "-1", "1.5"])
def test_a_worker_process_count_outside_1_to_10_is_refused_naming_the_setting(value: str):
    with pytest.raises(StartupError, match="FUNCTIONS_WORKER_PROCESS_COUNT"):
        worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": value})


@pytest.mark.parametrize(("value", "count"), [("", 1), ("1", 1), ("2", 2), ("10", 10)])
def test_the_worker_process_count_defaults_to_one(value: str, count: int):
    assert worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": value}) == count
    assert worker_process_count({}) == 1


def test_the_host_does_not_start_with_an_invalid_worker_process_count(
    durable_env: dict[str, str], tmp_path: Path
):
    with pytest.raises(HostStartError) as refused:
        start_host(sample_app(APP), env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "11"},
                   log_path=tmp_path / "host.log")
    assert "FUNCTIONS_WORKER_PROCESS_COUNT must be an integer from 1 to 10, got '11'" in str(
        refused.value)


def test_the_host_does_not_start_when_a_worker_process_cannot_import_the_app(
    durable_env: dict[str, str], tmp_path: Path
):
    with pytest.raises(HostStartError) as refused:
        start_host(sample_app(APP), log_path=tmp_path / "host.log", env={
            **durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
            "TEST_FAIL_IMPORT_IN_WORKER": "1",
        })
    assert ("The host did not start: importing function_app.py failed: RuntimeError: this "
            "app cannot be imported in a worker process") in str(refused.value)


def test_with_one_worker_process_activities_run_in_the_host_process(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP), env=durable_env)

    done = run(host, "pids_of_a_pair", 0.5)

    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == [host.process.pid, host.process.pid]
    assert host_pid(host) == host.process.pid


def test_two_activities_started_together_run_in_two_worker_processes(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})

    done = run(host, "pids_of_a_pair", 0.5)

    assert done["runtimeStatus"] == "Completed"
    sync_pid, async_pid = done["output"]
    assert sync_pid != async_pid
    assert host.process.pid not in (sync_pid, async_pid)
    assert host_pid(host) == host.process.pid  # HTTP functions stay in the host
    output = host.output()
    assert re.search(r"Activities run in 2 worker processes \(FUNCTIONS_WORKER_PROCESS_COUNT\), "
                     rf"pids ({sync_pid}, {async_pid}|{async_pid}, {sync_pid})\n", output)
    # the app's log record, from the worker, in the host's log format
    assert re.search(
        rf"^\[\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\] report_pid ran in process {sync_pid}$",
        output, re.MULTILINE)
    assert f"Executed 'Functions.report_pid' (Succeeded, Instance={done['instanceId']}, " in output


def test_a_failing_activity_reaches_the_orchestrator_as_it_does_in_process(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    activities = ("raise_value_error", "raise_app_error", "raise_key_error",
                  "return_unencodable")
    in_process = start_devhost(sample_app(APP), env=durable_env)
    seen_in_process = [run(in_process, "failure_seen", name)["output"] for name in activities]
    in_process.stop()
    workers = start_devhost(sample_app(APP),
                            env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})

    seen_in_worker = [run(workers, "failure_seen", name)["output"] for name in activities]

    assert seen_in_worker == seen_in_process
    assert seen_in_worker == [
        "Activity function 'raise_value_error' failed: ValueError: bad input 7 ",
        "Activity function 'raise_app_error' failed: QuotaExhausted: quota 7 used up ",
        "Activity function 'raise_key_error' failed: KeyError: 'row 7' ",
        seen_in_process[3],
    ]
    assert seen_in_process[3].startswith("Activity function 'return_unencodable' failed: ")
    output = workers.output()
    assert "(Failed, Instance=" in output and "): ValueError: bad input 7" in output
    # the worker's traceback, once, in the host's log
    assert output.count('raise ValueError(f"bad input {number}")') == 1
    assert "function_app.QuotaExhausted: quota 7 used up" in output
    assert "RemoteFailure" not in output


def test_the_function_timeout_applies_to_an_activity_in_a_worker_process(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})

    done = run(host, "failure_seen", "overrun_timeout")

    assert done["output"].startswith(
        "Activity function 'overrun_timeout' failed: FunctionTimeout: Timeout value of "
        "00:00:04 exceeded by function 'Functions.overrun_timeout'")
    # As the Functions host, the worker running it is stopped and started again (in
    # process its thread runs on): other activities it ran fail with it
    timed_out = int(re.findall(r"overrun_timeout runs in process (\d+)", host.output())[0])
    assert wait_until_gone([timed_out]) == []
    wait_for_output(host, "started again")
    assert (f"(pid {timed_out}) ran the invocation that timed out: stopping it and starting "
            "it again") in host.output()
    pair = run(host, "pids_of_a_pair", 0.5)["output"]
    assert len(set(pair)) == 2 and timed_out not in pair


def test_a_worker_killed_by_a_crash_point_fails_its_activity_and_is_started_again(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP), env={
        **durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
        CRASH_SETTING: WORKER_CRASH_POINT,
    })

    done = run(host, "crash_then_carry_on", 0)

    assert host.process.poll() is None
    assert done["runtimeStatus"] == "Completed"
    assert done["output"]["seen"].startswith(
        "Activity function 'kill_worker' failed: WorkerProcessExited: the worker process ")
    assert f"exited with code {CRASH_EXIT_CODE} during the invocation" in done["output"]["seen"]
    assert done["output"]["after"] != host.process.pid
    output = host.output()
    assert f"app: crash point {WORKER_CRASH_POINT} reached" in output
    assert f"exited with code {CRASH_EXIT_CODE}; starting it again" in output
    assert "Traceback" not in output  # the log line says it all
    deadline = time.monotonic() + 30
    while "activity worker process 0 started again" not in host.output() and \
            "activity worker process 1 started again" not in host.output():
        assert time.monotonic() < deadline, host.output()
        time.sleep(0.1)
    # both workers (the replacement included) answer two activities started together
    pair = run(host, "pids_of_a_pair", 0.5)["output"]
    assert len(set(pair)) == 2 and host.process.pid not in pair


def test_killing_the_host_mid_activity_leaves_no_worker_process(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    listed = re.search(r"worker processes \(FUNCTIONS_WORKER_PROCESS_COUNT\), pids (\d+), (\d+)",
                       host.output())
    assert listed, host.output()
    workers = [int(pid) for pid in listed.groups()]
    requests.post(host.url("/api/start/pids_of_a_pair"), json=30, timeout=10)
    deadline = time.monotonic() + 30
    while "report_pid ran in process" not in host.output():  # an activity is running
        assert time.monotonic() < deadline, host.output()
        time.sleep(0.1)
    assert all(is_running(pid) for pid in workers)

    os.kill(host.process.pid, signal.SIGKILL)
    host.process.wait(timeout=15)

    assert wait_until_gone(workers) == []


def test_stopping_the_host_stops_its_worker_processes(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    workers = run(host, "pids_of_a_pair", 0.3)["output"]

    assert host.stop() == 0

    assert wait_until_gone(workers, timeout=2) == []
    assert "Traceback" not in host.output()


def listed_workers(host: RunningHost) -> list[int]:
    listed = re.search(r"worker processes \(FUNCTIONS_WORKER_PROCESS_COUNT\), pids ([\d, ]+)\n",
                       host.output())
    assert listed, host.output()
    return [int(pid) for pid in listed.group(1).split(", ")]


def wait_for_output(host: RunningHost, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in host.output():
        assert time.monotonic() < deadline, host.output()
        time.sleep(0.1)


@pytest.mark.parametrize("count", ["1", "2"])
def test_several_megabytes_of_text_cross_to_and_from_a_worker_process_whole(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str], count: str
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": count})
    size = 6_000_000

    done = run(host, "large_round_trip", size, timeout=120)

    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["length"] == size
    assert done["output"]["distinct"] == sorted("\u00e9\u4e2d\U0001f600\udc80")


def test_a_sigterm_to_the_hosts_process_group_does_not_fail_the_running_activities(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    """`kill -TERM -<pgid>`, timeout(1), a supervisor: the workers get the host's signal.
    The host alone stops them (after its engine stopped, so what they ran runs again after
    a restart); a worker that died of the signal first failed its activities for good."""
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    workers = listed_workers(host)
    started = requests.post(host.url("/api/start/pids_of_a_pair"), json=3, timeout=10)
    wait_for_output(host, "report_pid ran in process")

    for pid in workers:
        os.kill(pid, signal.SIGTERM)

    done = wait_until_done(started.json()["statusQueryGetUri"], timeout=60)
    assert done["runtimeStatus"] == "Completed", done
    assert sorted(done["output"]) == sorted(workers)
    assert "exited with code" not in host.output()


def test_activities_running_in_workers_when_the_host_stops_run_again_after_a_restart(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    env = {**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
           "DEVHOST_MASTER_KEY": "master-restart", "DEVHOST_FUNCTION_KEY": "function-restart"}
    first = start_devhost(sample_app(APP), env=env)
    started = requests.post(first.url("/api/start/pids_of_a_pair"), json=3, timeout=10)
    instance_id = started.json()["id"]
    wait_for_output(first, "report_pid ran in process")

    assert first.stop() == 0

    second = start_devhost(sample_app(APP), env=env)
    done = wait_until_done(second.url(
        f"/runtime/webhooks/durabletask/instances/{instance_id}?code=master-restart"), 60)
    assert done["runtimeStatus"] == "Completed", done
    assert sorted(done["output"]) == sorted(listed_workers(second))


def test_a_worker_that_keeps_dying_stops_the_host_after_three_failures_per_worker(
    durable_env: dict[str, str], tmp_path: Path
):
    """As the Functions host: 3 x FUNCTIONS_WORKER_PROCESS_COUNT worker failures in a
    short while and it stops restarting workers; with none left it stops (Azure recycles
    it), leaving the work items stored, rather than starting workers for ever."""
    host = start_host(sample_app(APP), log_path=tmp_path / "host.log", env={
        **durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
        "TEST_WORKER_EXITS_AFTER_LOAD": "0.2",
    })
    try:
        code = host.process.wait(timeout=120)
    finally:
        host.kill()

    output = host.output()
    assert code == 1, output
    assert output.count("exited with code 5; starting it again") == 5
    assert ("Exceeded the activity worker process restart count (3 failures per worker "
            "process within 30 minutes): the host stops") in output
    assert "Traceback" not in output


def test_a_test_host_does_not_inherit_a_worker_process_count_from_the_test_run(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
):
    """Crash tests expect an APP_CRASH_AT point in an activity to kill the whole host: a
    FUNCTIONS_WORKER_PROCESS_COUNT exported in the shell that runs the tests must not turn
    that into a worker's death. A test that wants workers says so in its env."""
    monkeypatch.setenv("FUNCTIONS_WORKER_PROCESS_COUNT", "2")
    host = start_devhost(sample_app(APP), env=durable_env)

    done = run(host, "pids_of_a_pair", 0.1)

    assert done["output"] == [host.process.pid, host.process.pid]
    assert "worker processes (FUNCTIONS_WORKER_PROCESS_COUNT)" not in host.output()


@pytest.mark.parametrize("activity", ["exit_async", "exit_in_thread"])
def test_an_activity_that_exits_its_worker_fails_and_the_worker_is_started_again(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str], activity: str
):
    """sys.exit() in an activity ends the process it runs in, as in-process it ends the
    host: the worker must exit too (failing that activity, and started again), not live on
    with its event loop gone, leaving every later activity sent to it unanswered."""
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"})

    seen = run(host, "failure_seen", activity)["output"]

    assert seen.startswith(f"Activity function '{activity}' failed: WorkerProcessExited: "), seen
    assert "exited with code 7 during the invocation" in seen
    wait_for_output(host, "started again")
    for _ in range(2):  # each worker, the replacement included, answers
        pair = run(host, "pids_of_a_pair", 0.5)
        assert pair["runtimeStatus"] == "Completed", pair


def test_a_fan_out_wider_than_max_concurrent_activities_completes_across_the_workers(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str]
):
    host = start_devhost(sample_app(APP),
                         env={**durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "3"})

    done = run(host, "pids_of_a_fan_out", 60, timeout=120)  # 6 x the default limit of 10

    assert done["runtimeStatus"] == "Completed", done
    assert len(done["output"]) == 60
    assert set(done["output"]) == set(listed_workers(host))


def test_a_worker_that_hangs_while_loading_the_app_again_is_stopped(
    start_devhost: Callable[..., RunningHost], durable_env: dict[str, str], tmp_path: Path
):
    """As the Functions host's process start timeout (60 s): a worker started again that
    never loads the app is stopped and counts as a failure, rather than holding its place
    for ever (with every worker so, activities would wait for ever)."""
    loads = tmp_path / "loads"
    loads.mkdir()
    host = start_devhost(sample_app(APP), env={
        **durable_env, "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
        CRASH_SETTING: WORKER_CRASH_POINT, "TEST_HANG_IMPORT_AFTER_FIRST_TWO": str(loads),
    })

    assert run(host, "crash_then_carry_on", 0)["runtimeStatus"] == "Completed"

    wait_for_output(host, "did not load the app within 60 s; stopping it", timeout=120)
    hung = int(re.findall(r"\(pid (\d+)\) did not load the app within 60 s", host.output())[0])
    assert wait_until_gone([hung]) == []
    wait_for_output(host, f"(pid {hung}) exited with code -9 while loading the app; "
                    "starting it again")
