"""`make run`: the app on its embedded default, entirely on this machine.

Starts Azurite, the Salesforce simulator, a SQLite source that keeps changing and the local
Functions host serving function_app.py (`--no-host`: all but the host, for a host run under
a debugger or by `func start`). Where they listen and keep their state is decided by the
environment alone:

    FUNCTIONS_PORT      the host (default: Host.LocalHttpPort of local.settings.json, else 7071)
    SFSIM_PORT          the Salesforce simulator (default 8787)
    AZURITE_BLOB_PORT, AZURITE_QUEUE_PORT, AZURITE_TABLE_PORT
                        Azurite (default 10000-10002, or free ports while those are taken)
    LOCAL_STATE_DIR     Azurite's data, the simulator's org, the SQLite source (default .local);
                        one run at a time: a second run on it stops at once

The settings that point the app at these services (AzureWebJobsStorage, SALESFORCE_LOGIN_URL
and the simulator's client, the SQLite source's file) are set here, printed, and written to
LOCAL_STATE_DIR/host.env while the services run; they take precedence over
local.settings.json (created from the example on first run), except a SALESFORCE_LOGIN_URL
off loopback: that org is used and no simulator starts. A service that cannot start ends the
run with one line saying why. Ctrl-C stops everything started here.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from devtools import embedded_source, services
from devtools.console import relay_lines, say

DEFAULT_FUNCTIONS_PORT = 7071
DEFAULT_SFSIM_PORT = 8787
# The well-known ports let `UseDevelopmentStorage=true` work for other tools too (Azure
# Storage Explorer, `func start`).
AZURITE_PORT_SETTINGS = {
    "blob": ("AZURITE_BLOB_PORT", 10000),
    "queue": ("AZURITE_QUEUE_PORT", 10001),
    "table": ("AZURITE_TABLE_PORT", 10002),
}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
HOST_START_SECONDS = 300.0
HOST_ENV_FILE = "host.env"
# Held (flock) while a run uses its state folder; the kernel lets go when the run dies.
STATE_LOCK_FILE = "run.lock"
# What the services started here import (requirements-dev.txt installs them into .venv).
SERVICE_MODULES = ("azure.functions", "azure.durable_functions", "azure.data.tables",
                   "azure.storage.blob", "aiohttp", "werkzeug", "jwt", "requests", "pyodbc",
                   "croniter")


class StartFailed(RuntimeError):
    """The local stack cannot run; the message is the one line the user sees."""


@dataclass(frozen=True)
class LocalRun:
    """Where this run's services listen and keep their state."""

    app_dir: Path
    state_dir: Path
    functions_port: int
    sfsim_port: int
    azurite_ports: dict[str, int]
    # Ports named in the environment are kept or refused; defaults may fall back.
    chosen: frozenset[str]
    local_values: dict[str, str]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], app_dir: Path) -> LocalRun:
        from devhost.host_config import local_http_port, read_lenient_json

        settings_file = ensure_local_settings(app_dir)
        try:
            document = read_lenient_json(settings_file)
            local_values = {str(k): str(v) for k, v in (document.get("Values") or {}).items()}
        except (OSError, ValueError, AttributeError) as error:
            raise StartFailed(f"{settings_file} is not a JSON settings file: {error}") from error
        ports = {
            "FUNCTIONS_PORT": local_http_port(app_dir) or DEFAULT_FUNCTIONS_PORT,
            "SFSIM_PORT": DEFAULT_SFSIM_PORT,
            **{name: default for name, default in AZURITE_PORT_SETTINGS.values()},
        }
        chosen = set()
        for name in ports:
            text = environ.get(name, "").strip()
            if text:
                ports[name] = _parse_port(name, text)
                chosen.add(name)
        state_dir = Path(environ.get("LOCAL_STATE_DIR", "").strip() or app_dir / ".local")
        return cls(
            app_dir=app_dir,
            state_dir=state_dir.resolve(),
            functions_port=ports["FUNCTIONS_PORT"],
            sfsim_port=ports["SFSIM_PORT"],
            azurite_ports={svc: ports[name] for svc, (name, _) in AZURITE_PORT_SETTINGS.items()},
            chosen=frozenset(chosen),
            local_values=local_values,
        )


def _parse_port(name: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise StartFailed(f"{name} must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def require_service_modules(modules: tuple[str, ...] = SERVICE_MODULES) -> None:
    """Run by another Python than .venv's (`python -m ...` outside the venv), the services
    would each die with a traceback; one line says what to run instead."""
    missing = [name for name in modules if not _installed(name)]
    if missing:
        raise StartFailed(
            f"{', '.join(missing)} not installed for {sys.executable}: run `make run`, or "
            "`make run-deps` and then `.venv/bin/python -m devtools.run_local`")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def ensure_local_settings(app_dir: Path) -> Path:
    settings_file = app_dir / "local.settings.json"
    if not settings_file.exists():
        shutil.copy(app_dir / "local.settings.example.json", settings_file)
        say(f"created {settings_file.name} from local.settings.example.json")
    return settings_file


def require_free_port(port: int, setting: str) -> None:
    if not services.port_is_free(port):
        raise StartFailed(
            f"port {port} ({setting}) is in use, by another `make run` perhaps: "
            f"stop it or set {setting} to a free port"
        )


def external_org(environ: Mapping[str, str], local_values: Mapping[str, str]) -> str | None:
    """The login URL of a real org the app is configured for, or None for the simulator."""
    url = (environ.get("SALESFORCE_LOGIN_URL") or local_values.get("SALESFORCE_LOGIN_URL") or "")
    url = url.strip()
    if url and urlparse(url).hostname not in LOOPBACK_NAMES:
        return url
    return None


def simulator_settings(
    port: int, environ: Mapping[str, str], local_values: Mapping[str, str]
) -> tuple[dict[str, str], str]:
    """The app settings that reach the simulator on `port`, and the line that says so."""
    from sfsim.settings import SimSettings

    try:
        simulator = SimSettings.from_env(environ)
    except (ValueError, TypeError, OSError) as error:
        raise StartFailed(f"the simulator's SFSIM_* settings are invalid: {error}") from error
    url = f"http://{services.LOOPBACK}:{port}"
    configured = (environ.get("SALESFORCE_LOGIN_URL") or local_values.get("SALESFORCE_LOGIN_URL"))
    note = f"; {configured} of the settings is not used" if configured and configured != url else ""
    line = (f"SALESFORCE_LOGIN_URL={url}, SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET: "
            f"the simulator started here{note}")
    return {
        "SALESFORCE_LOGIN_URL": url,
        "SALESFORCE_CLIENT_ID": simulator.client_id,
        "SALESFORCE_CLIENT_SECRET": simulator.client_secret,
    }, line


def embedded_source_database(
    environ: Mapping[str, str], local_values: Mapping[str, str], run: LocalRun
) -> Path | None:
    """The example job's SQLite file as an absolute path; None when it reads another database.

    The Python worker does not run in the app folder (the host, like Azure, starts it
    elsewhere), so a relative path is resolved here: `.local/` is this run's state folder,
    anything else is relative to the app folder.
    """
    name = embedded_source.CONNECTION_SETTING
    path = embedded_source.sqlite_database(environ.get(name) or local_values.get(name))
    if path is None or path.is_absolute():
        return path
    if path.parts[:1] == (".local",):
        return run.state_dir.joinpath(*path.parts[1:])
    return run.app_dir / path


def start_azurite(run: LocalRun) -> services.Azurite:
    ports: dict[str, int] = dict(run.azurite_ports)
    for service, port in run.azurite_ports.items():
        setting = AZURITE_PORT_SETTINGS[service][0]
        if setting in run.chosen:
            require_free_port(port, setting)
        elif not services.port_is_free(port):
            say(f"Azurite: port {port} is in use (another Azurite?), so all three on free ports")
            ports = {}
            break
    try:
        return services.start_azurite(
            run.state_dir / "azurite", log_file=run.state_dir / "azurite.log",
            blob_port=ports.get("blob"), queue_port=ports.get("queue"),
            table_port=ports.get("table"),
        )
    except services.ServiceUnavailable as error:
        raise StartFailed(f"{error} (log: {run.state_dir / 'azurite.log'})") from error


class Stack:
    """The processes started so far; `close` stops them, the last started first."""

    def __init__(self) -> None:
        self._cleanup = contextlib.ExitStack()
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> subprocess.Popen:
        process = subprocess.Popen(
            command, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        assert process.stdout is not None
        relay = relay_lines(process.stdout)
        self._cleanup.callback(relay.join, 5)
        # SIGINT, as Ctrl-C in its own terminal: the simulator saves its org on the way out.
        self._cleanup.callback(services.stop_process_group, process, stop_signal=signal.SIGINT)
        self.children[name] = process
        return process

    def claim_state_dir(self, state_dir: Path) -> None:
        """Two Azurites on one data folder overwrite each other's files (and drop each
        other's blobs as unreferenced), two simulators each other's org: one run a folder."""
        lock = (state_dir / STATE_LOCK_FILE).open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StartFailed(
                f"LOCAL_STATE_DIR {state_dir} is in use by another `make run` (Azurite's data "
                "and the simulator's org cannot be shared): stop it, or give this run a folder "
                "of its own, e.g. LOCAL_STATE_DIR=.local-2") from None
        self._cleanup.callback(lock.close)

    def keep(self, azurite: services.Azurite) -> None:
        self._cleanup.callback(azurite.stop)

    def forget_file(self, path: Path) -> None:
        """Delete `path` when the services stop: it points at them."""
        self._cleanup.callback(path.unlink, missing_ok=True)

    def close(self) -> None:
        self._cleanup.close()


def start_services(run: LocalRun, stack: Stack, *, with_host: bool = True) -> None:
    try:
        run.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StartFailed(f"LOCAL_STATE_DIR {run.state_dir} cannot be created: {error}") from error
    stack.claim_state_dir(run.state_dir)
    org = external_org(os.environ, run.local_values)
    if with_host:
        require_free_port(run.functions_port, "FUNCTIONS_PORT")
    if org is None:
        require_free_port(run.sfsim_port, "SFSIM_PORT")

    azurite = start_azurite(run)
    stack.keep(azurite)
    say(f"AzureWebJobsStorage: the Azurite started here, blob {azurite.blob_port}, queue "
        f"{azurite.queue_port}, table {azurite.table_port} on {services.LOOPBACK}, data in "
        f"{azurite.workdir}")
    decided = {"AzureWebJobsStorage": azurite.connection_string}
    env = dict(os.environ, **decided, PYTHONUNBUFFERED="1")

    if org is not None:
        say(f"Salesforce: {org} (SALESFORCE_LOGIN_URL); no simulator started")
    else:
        command = [sys.executable, "-m", "sfsim", "--port", str(run.sfsim_port)]
        if simulator_keeps_state():
            command += ["--state", str(run.state_dir / "sfsim-org.json")]
        settings, line = simulator_settings(run.sfsim_port, os.environ, run.local_values)
        simulator = stack.start("sfsim", command, env)
        _wait_until_listening(run.sfsim_port, simulator, "the Salesforce simulator")
        decided.update(settings)
        env.update(settings)
        say(line)

    database = embedded_source_database(os.environ, run.local_values, run)
    if database is not None:
        decided[embedded_source.CONNECTION_SETTING] = f"Driver={{SQLite3}};Database={database};"
        env.update(decided)
        stack.start("embedded source", [sys.executable, "-m", "devtools.embedded_source"], env)
        say(f"{embedded_source.CONNECTION_SETTING}: SQLite {database}, the embedded source")

    settings_file = write_host_env(run.state_dir / HOST_ENV_FILE, decided)
    stack.forget_file(settings_file)
    if not with_host:
        say(f"these settings are in {settings_file} for a host started elsewhere "
            "(VS Code's launch.json, `func start`)")
        return
    host = stack.start(
        "host",
        [sys.executable, "-m", "devhost", str(run.app_dir), "--port", str(run.functions_port)],
        env,
    )
    _wait_until_listening(run.functions_port, host, "the local host", HOST_START_SECONDS)


def write_host_env(path: Path, settings: Mapping[str, str]) -> Path:
    """The settings decided here as `NAME="value"` lines, a format both VS Code's `envFile`
    and a POSIX shell (`set -a; . FILE; set +a`) read."""
    for name, value in settings.items():
        if any(char in value for char in '"$`\\\n'):
            raise StartFailed(f"{name} holds a character {path.name} cannot carry: {value!r}")
    path.write_text("".join(f'{name}="{value}"\n' for name, value in settings.items()))
    return path


def simulator_keeps_state() -> bool:
    """Whether this checkout's simulator can keep its org in a file (`--state FILE`)."""
    usage = subprocess.run(
        [sys.executable, "-m", "sfsim", "--help"], capture_output=True, text=True, check=False
    )
    return "--state" in usage.stdout


def _wait_until_listening(
    port: int, process: subprocess.Popen, name: str, timeout: float = 60.0
) -> None:
    try:
        services.wait_for_port(port, process, name, timeout)
    except services.ServiceUnavailable as error:
        raise StartFailed(f"{error} (its output is above)") from error


def watch(stack: Stack) -> NoReturn:
    """Wait for Ctrl-C; a service that exits on its own ends the run."""
    while True:
        for name, process in stack.children.items():
            if process.poll() is not None:
                raise StartFailed(f"{name} exited with code {process.returncode}")
        time.sleep(0.5)


def _interrupt(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.run_local", description=__doc__.splitlines()[0],
        epilog="Ports and the state folder: see `make run` in README.md.",
    )
    parser.add_argument("--app-dir", type=Path, default=services.REPO_ROOT,
                        help="the function app's folder (default: this checkout)")
    parser.add_argument("--no-host", dest="with_host", action="store_false",
                        help="start the services only, for a host run under a debugger or "
                        "by `func start` with the settings of LOCAL_STATE_DIR/host.env")
    arguments = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack()
    failure = None
    try:
        require_service_modules()
        run = LocalRun.from_environ(os.environ, arguments.app_dir.resolve())
        start_services(run, stack, with_host=arguments.with_host)
        serving = (f"the host on http://{services.LOOPBACK}:{run.functions_port}"
                   if arguments.with_host else "the services")
        say(f"ready: {serving}, state in {run.state_dir}; Ctrl-C stops everything")
        watch(stack)
    except StartFailed as error:
        failure = error
    except KeyboardInterrupt:
        say("stopping every service started here")
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave services running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
    if failure is not None:
        say(f"make run stopped: {failure}", sys.stderr)
        return 1
    say("make run stopped: every service it started is stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
