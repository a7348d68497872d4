"""Run `python -m devhost` as a subprocess for tests: start, wait until ready, stop.

    with running_host(app_dir, env={"AzureWebJobsStorage": azurite.connection_string}) as host:
        requests.get(host.url("/api/hello"), params={"code": host.function_key})

The host's output (start-up listing, execution log lines, tracebacks) goes to a log file
whose text `host.output()` returns, so a test can assert what a user would read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from devhost.host_config import WORKER_PROCESS_COUNT_SETTING
from devhost.keys import FUNCTION_KEY_SETTING, MASTER_KEY_SETTING

LOOPBACK = "127.0.0.1"
# Settings a test host takes from its `env` only, never from the shell running the tests:
# with worker processes an APP_CRASH_AT point in an activity kills a worker, not the host
# that a crash test waits to see die.
NOT_INHERITED = frozenset({WORKER_PROCESS_COUNT_SETTING})
REPO_ROOT = Path(__file__).resolve().parent.parent


class HostStartError(RuntimeError):
    """The host exited or did not become ready; the message carries its output."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningHost:
    process: subprocess.Popen[bytes]
    port: int
    master_key: str
    function_key: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful, like Ctrl+C) and wait; SIGKILL if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the host dies mid-work, as on a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)


def start_host(
    app_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 60.0,
) -> RunningHost:
    """Start the host on `app_dir` and return once it answers; raise HostStartError if not."""
    port = port or free_port()
    master_key = (env or {}).get(MASTER_KEY_SETTING) or f"master-{port}"
    function_key = (env or {}).get(FUNCTION_KEY_SETTING) or f"function-{port}"
    environment = {
        **{name: value for name, value in os.environ.items() if name not in NOT_INHERITED},
        MASTER_KEY_SETTING: master_key,
        FUNCTION_KEY_SETTING: function_key,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    # The host must import devhost even when the app lives elsewhere.
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), environment.get("PYTHONPATH", "")) if part
    )
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="devhost-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", str(app_dir), "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=str(app_dir),
        )
    host = RunningHost(process, port, master_key, function_key, log_path)
    deadline = time.monotonic() + ready_timeout
    status_url = host.url(f"/admin/host/status?code={master_key}")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HostStartError(
                f"the host exited with code {process.returncode}:\n{host.output()}"
            )
        try:
            with urllib.request.urlopen(status_url, timeout=2) as response:  # noqa: S310
                if json.loads(response.read()).get("state") == "Running":
                    return host
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        time.sleep(0.1)
    host.stop()
    raise HostStartError(f"the host was not ready within {ready_timeout:.0f}s:\n{host.output()}")


@contextlib.contextmanager
def running_host(
    app_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    log_path: Path | None = None,
) -> Iterator[RunningHost]:
    host = start_host(app_dir, env=env, port=port, log_path=log_path)
    try:
        yield host
    finally:
        host.stop()
