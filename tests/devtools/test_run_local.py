"""`python -m devtools.run_local` as `make run` starts it, on free ports, stopped by Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools import services
from devtools.console import stamped

APP_PARTS = ("function_app.py", "host.json", "orchestrators", "activities", "shared",
             "local.settings.example.json")
RUN_SETTINGS = ("FUNCTIONS_PORT", "SFSIM_PORT", "AZURITE_BLOB_PORT", "AZURITE_QUEUE_PORT",
                "AZURITE_TABLE_PORT", "LOCAL_STATE_DIR")
FUNCTION_KEY = "run-local-test-key"
STARTING_SECONDS = 200


class RunLocalProcess:
    """One `make run` in a subprocess, its output collected line by line."""

    def __init__(self, app_dir: Path, *options: str, **settings: str) -> None:
        env = {name: value for name, value in os.environ.items()
               if name not in RUN_SETTINGS and not name.startswith(("SALESFORCE_", "SYNC_"))}
        env.update(settings, DEVHOST_FUNCTION_KEY=FUNCTION_KEY)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.run_local", "--app-dir", str(app_dir), *options],
            cwd=services.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, fragment: str, timeout: float = STARTING_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if fragment in line]
                if found:
                    return found[0]
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no line with {fragment!r}; output:\n{self.output}")
                self._changed.wait(0.5)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        time.sleep(0.2)  # lets the collector take the last lines
        return code

    def finish(self) -> int:
        code = self.process.wait(timeout=STARTING_SECONDS)
        time.sleep(0.2)
        return code


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """This checkout's app in a folder of its own, so its local.settings.json is the test's."""
    app = tmp_path / "app"
    app.mkdir()
    for part in APP_PARTS:
        (app / part).symlink_to(services.REPO_ROOT / part)
    return app


def write_local_settings(app: Path, **values: str) -> None:
    document = json.loads((services.REPO_ROOT / "local.settings.example.json").read_text())
    document["Values"].update(values)
    (app / "local.settings.json").write_text(json.dumps(document, indent=2))


@pytest.fixture
def runs() -> Iterator[list[RunLocalProcess]]:
    started: list[RunLocalProcess] = []
    yield started
    for run in started:
        with contextlib.suppress(Exception):
            run.interrupt()
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(services.free_port())
    return sorted(ports)


def ports_left_in_time_wait(count: int) -> list[int]:
    """Ports whose only sockets are connections in TIME_WAIT, as after a quick restart."""
    ports = []
    for _ in range(count):
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((services.LOOPBACK, 0))
            listener.listen()
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end waits in TIME_WAIT
            client.recv(1)
            client.close()
            ports.append(listener.getsockname()[1])
    return ports


def asset_records(sfsim_port: int) -> list[dict]:
    answer = requests.get(f"http://{services.LOOPBACK}:{sfsim_port}/_sim/records/Asset",
                          timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_two_runs_side_by_side_each_write_into_their_own_simulator(
    app_dir: Path, tmp_path: Path, runs: list[RunLocalProcess]
):
    functions_a, sfsim_a, functions_b, sfsim_b, *azurite_b = distinct_free_ports(7)
    # The settings file names B's simulator, as a copy of the example names 8787: A must
    # still write into its own simulator, B (its sync off) must receive nothing.
    write_local_settings(app_dir, SALESFORCE_LOGIN_URL=f"http://127.0.0.1:{sfsim_b}")
    # A restart leaves connections in TIME_WAIT on Azurite's ports: they must be reused.
    azurite_a = ports_left_in_time_wait(3)
    run_a = RunLocalProcess(
        app_dir, FUNCTIONS_PORT=str(functions_a), SFSIM_PORT=str(sfsim_a),
        AZURITE_BLOB_PORT=str(azurite_a[0]), AZURITE_QUEUE_PORT=str(azurite_a[1]),
        AZURITE_TABLE_PORT=str(azurite_a[2]), LOCAL_STATE_DIR=str(tmp_path / "state-a"),
    )
    runs.append(run_a)
    run_b = RunLocalProcess(
        app_dir, FUNCTIONS_PORT=str(functions_b), SFSIM_PORT=str(sfsim_b),
        AZURITE_BLOB_PORT=str(azurite_b[0]), AZURITE_QUEUE_PORT=str(azurite_b[1]),
        AZURITE_TABLE_PORT=str(azurite_b[2]), LOCAL_STATE_DIR=str(tmp_path / "state-b"),
        SYNC_ASSET_CHANGES_ENABLED="false",
    )
    runs.append(run_b)
    run_a.wait_for_line("ready:")
    run_b.wait_for_line("ready:")

    started = requests.post(
        f"http://{services.LOOPBACK}:{functions_a}/api/sync/asset-changes/run",
        headers={"x-functions-key": FUNCTION_KEY}, timeout=30,
    )
    assert started.status_code in (202, 409), started.text
    deadline = time.monotonic() + STARTING_SECONDS
    while len(asset_records(sfsim_a)) < 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert len(asset_records(sfsim_a)) >= 200, run_a.output
    assert asset_records(sfsim_b) == []

    assert run_a.interrupt() == 0
    assert run_b.interrupt() == 0
    assert (f"SALESFORCE_LOGIN_URL=http://127.0.0.1:{sfsim_a}, SALESFORCE_CLIENT_ID and "
            "SALESFORCE_CLIENT_SECRET: the simulator started here; "
            f"http://127.0.0.1:{sfsim_b} of the settings is not used") in run_a.output
    assert (f"the Azurite started here, blob {azurite_a[0]}, queue {azurite_a[1]}, "
            f"table {azurite_a[2]}") in run_a.output
    for name in ("state-a", "state-b"):
        assert (tmp_path / name / "embedded-source.db").is_file()
        assert (tmp_path / name / "azurite").is_dir()
    for run in (run_a, run_b):
        assert run.lines[-1].endswith("make run stopped: every service it started is stopped")
        assert [line for line in run.lines if stamped(line) != line] == []
    for port in (functions_a, sfsim_a, functions_b, sfsim_b, *azurite_a, *azurite_b):
        assert services.port_is_free(port), f"port {port} still in use after Ctrl-C"


@pytest.mark.parametrize("setting", ["FUNCTIONS_PORT", "SFSIM_PORT"])
def test_a_busy_port_ends_the_run_with_one_line_naming_it(
    app_dir: Path, tmp_path: Path, setting: str
):
    write_local_settings(app_dir)
    ports = dict(zip(RUN_SETTINGS[:5], map(str, distinct_free_ports(5)), strict=True))
    with socket.socket() as holder:
        holder.bind((services.LOOPBACK, int(ports[setting])))
        holder.listen()
        env = {name: value for name, value in os.environ.items() if name not in RUN_SETTINGS}
        result = subprocess.run(
            [sys.executable, "-m", "devtools.run_local", "--app-dir", str(app_dir)],
            cwd=services.REPO_ROOT, capture_output=True, text=True, timeout=STARTING_SECONDS,
            env=dict(env, **ports, LOCAL_STATE_DIR=str(tmp_path / "state")),
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [stamped(result.stderr.splitlines()[0])]
    assert (f"make run stopped: port {ports[setting]} ({setting}) is in use, by another "
            f"`make run` perhaps: stop it or set {setting} to a free port") in result.stderr
    assert "ready:" not in result.stdout
    assert all(services.port_is_free(int(port)) for name, port in ports.items()
               if name != setting)


def test_a_python_without_the_app_packages_ends_the_run_with_one_line_before_any_service(
    app_dir: Path, tmp_path: Path
):
    # -S: no site-packages, as `python -m devtools.run_local` by a Python other than .venv's
    env = {name: value for name, value in os.environ.items() if name not in RUN_SETTINGS}
    result = subprocess.run(
        [sys.executable, "-S", "-m", "devtools.run_local", "--app-dir", str(app_dir)],
        cwd=services.REPO_ROOT, capture_output=True, text=True, timeout=STARTING_SECONDS,
        env=dict(env, LOCAL_STATE_DIR=str(tmp_path / "state")),
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [stamped(result.stderr.splitlines()[0])], result.stderr
    assert "not installed for" in result.stderr
    assert "`make run-deps` and then `.venv/bin/python -m devtools.run_local`" in result.stderr
    assert not (tmp_path / "state").exists()  # nothing started, not even Azurite


def test_a_second_run_on_the_same_state_folder_ends_with_one_line_and_the_first_goes_on(
    app_dir: Path, tmp_path: Path, runs: list[RunLocalProcess]
):
    write_local_settings(app_dir)
    state = tmp_path / "state"
    ports = distinct_free_ports(8)
    first = RunLocalProcess(
        app_dir, "--no-host", SFSIM_PORT=str(ports[0]), AZURITE_BLOB_PORT=str(ports[1]),
        AZURITE_QUEUE_PORT=str(ports[2]), AZURITE_TABLE_PORT=str(ports[3]),
        LOCAL_STATE_DIR=str(state))
    runs.append(first)
    first.wait_for_line("ready: the services")
    second = RunLocalProcess(
        app_dir, "--no-host", SFSIM_PORT=str(ports[4]), AZURITE_BLOB_PORT=str(ports[5]),
        AZURITE_QUEUE_PORT=str(ports[6]), AZURITE_TABLE_PORT=str(ports[7]),
        LOCAL_STATE_DIR=str(state))
    runs.append(second)
    assert second.finish() == 1
    assert second.lines == [stamped(second.lines[0])], second.output
    assert f"make run stopped: LOCAL_STATE_DIR {state.resolve()} is in use by another " \
        "`make run`" in second.lines[0]
    assert all(services.port_is_free(port) for port in ports[4:])  # nothing of it started
    assert first.process.poll() is None
    asset_records(ports[0])  # the first one's simulator still answers
    assert first.interrupt() == 0
    # The folder is free again once its run stopped.
    third = RunLocalProcess(
        app_dir, "--no-host", SFSIM_PORT=str(ports[4]), AZURITE_BLOB_PORT=str(ports[5]),
        AZURITE_QUEUE_PORT=str(ports[6]), AZURITE_TABLE_PORT=str(ports[7]),
        LOCAL_STATE_DIR=str(state))
    runs.append(third)
    third.wait_for_line("ready: the services")
    assert third.interrupt() == 0


def test_a_host_that_cannot_start_stops_every_service_with_one_line(
    app_dir: Path, tmp_path: Path, runs: list[RunLocalProcess]
):
    write_local_settings(app_dir, SYNC_ASSET_CHANGES_SCHEDULE="99 99 * * * *")
    ports = dict(zip(RUN_SETTINGS[:5], map(str, distinct_free_ports(5)), strict=True))
    run = RunLocalProcess(app_dir, **ports, LOCAL_STATE_DIR=str(tmp_path / "state"))
    runs.append(run)
    assert run.finish() == 1
    assert run.lines[-1].endswith(
        "make run stopped: the local host exited with code 1 while starting (its output is "
        "above)"), run.output
    assert "99 99 * * * *" in run.output
    assert "ready:" not in run.output
    assert all(services.port_is_free(int(port)) for port in ports.values())


def test_services_for_a_host_started_elsewhere_leave_their_settings_in_a_shell_readable_file(
    app_dir: Path, tmp_path: Path, runs: list[RunLocalProcess]
):
    write_local_settings(app_dir)
    sfsim_port, blob, queue, table = distinct_free_ports(4)
    state = tmp_path / "state"
    run = RunLocalProcess(
        app_dir, "--no-host", SFSIM_PORT=str(sfsim_port), AZURITE_BLOB_PORT=str(blob),
        AZURITE_QUEUE_PORT=str(queue), AZURITE_TABLE_PORT=str(table), LOCAL_STATE_DIR=str(state),
    )
    runs.append(run)
    run.wait_for_line("ready: the services")
    shell = subprocess.run(
        ["sh", "-c", f'set -a; . "{state / "host.env"}"; set +a; exec "$0" -c "$1"',
         sys.executable, "import json, os; print(json.dumps(dict(os.environ)))"],
        capture_output=True, text=True, check=True,
    )
    seen = json.loads(shell.stdout)
    assert f"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;" in seen["AzureWebJobsStorage"]
    assert seen["SALESFORCE_LOGIN_URL"] == f"http://127.0.0.1:{sfsim_port}"
    assert seen["SYNC_ASSET_CHANGES_SOURCE_CONNECTION"] == (
        f"Driver={{SQLite3}};Database={state / 'embedded-source.db'};")
    token = requests.post(
        f"{seen['SALESFORCE_LOGIN_URL']}/services/oauth2/token", timeout=10,
        data={"grant_type": "client_credentials", "client_id": seen["SALESFORCE_CLIENT_ID"],
              "client_secret": seen["SALESFORCE_CLIENT_SECRET"]},
    )
    assert token.status_code == 200, token.text
    assert "Function key" not in run.output  # no host was started
    assert run.interrupt() == 0
    assert not (state / "host.env").exists()
