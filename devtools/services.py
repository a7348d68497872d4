"""Start and stop the real local services the app needs, on free loopback ports.

Used by the pytest fixtures (tests/conftest.py) and by `make run` (devtools/run_local.py).
Each service runs in its own process group so that stopping it also stops its children,
and every start either returns a ready service or raises `ServiceUnavailable` saying what
is missing and how to install it: a test that needs a service fails loudly, never skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

# Azurite's well-known development account; it is public and documented by Microsoft.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class ServiceUnavailable(RuntimeError):
    """A local service could not be started; the message says what to install or fix."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when a server could listen on `port` of loopback now.

    The probe sets SO_REUSEADDR as servers do (Node, aiohttp, Werkzeug), so connections
    lingering in TIME_WAIT after a quick restart do not count as busy; a listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{name} exited with code {process.returncode} while starting")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceUnavailable(f"{name} did not listen on {LOOPBACK}:{port} within {timeout:.0f}s")


def stop_process_group(
    process: subprocess.Popen, timeout: float = 10.0, stop_signal: int = signal.SIGTERM
) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, stop_signal)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen
    workdir: Path

    @property
    def blob_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.table_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
            f"QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def stop(self, grace_seconds: float = 10.0) -> None:
        # Azurite waits for idle keep-alive connections before it exits on SIGTERM.
        stop_process_group(self.process, timeout=grace_seconds)


def azurite_executable() -> Path:
    executable = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not executable.exists():
        raise ServiceUnavailable(
            f"Azurite is not installed at {executable.relative_to(REPO_ROOT)}: run `make deps` "
            "(it runs `npm ci` from package-lock.json)"
        )
    return executable


def start_azurite(
    workdir: Path | None = None,
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    log_file: Path | None = None,
    access_log: bool = False,
) -> Azurite:
    """Start Azurite (blob, queue, table) on loopback; data lives in `workdir`.

    `access_log` writes a line per request to `log_file` (a benchmark counts them)."""
    executable = azurite_executable()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="azurite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {
        "blob": blob_port or free_port(),
        "queue": queue_port or free_port(),
        "table": table_port or free_port(),
    }
    command = [
        str(executable),
        "--blobHost", LOOPBACK, "--blobPort", str(ports["blob"]),
        "--queueHost", LOOPBACK, "--queuePort", str(ports["queue"]),
        "--tableHost", LOOPBACK, "--tablePort", str(ports["table"]),
        "--location", str(workdir),
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
    ]
    if not access_log:
        command.append("--silent")
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 (held by the child)
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir
    )
    service = Azurite(ports["blob"], ports["queue"], ports["table"], process, workdir)
    try:
        for name, port in ports.items():
            wait_for_port(port, process, f"Azurite {name} service")
    except BaseException:  # Ctrl-C while it starts must not leave it running either
        service.stop()
        raise
    return service


@dataclass
class Postgres:
    port: int
    process: subprocess.Popen
    workdir: Path
    host: str = LOOPBACK
    database: str = "postgres"
    user: str = "postgres"
    password: str = field(default="local-test-only")

    @property
    def odbc_connection_string(self) -> str:
        return (
            "Driver={PostgreSQL Unicode};"
            f"Server={self.host};Port={self.port};Database={self.database};"
            f"Uid={self.user};Pwd={self.password};"
        )

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: pooled ODBC connections would hold off SIGTERM.
        stop_process_group(self.process, stop_signal=signal.SIGINT)
        shutil.rmtree(self.workdir, ignore_errors=True)


def postgres_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise ServiceUnavailable(
            "PostgreSQL server binaries (initdb) not found: run `make deps` "
            "(installs the Debian package postgresql)"
        )
    return candidates[0].parent


def _run_as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root; as root, drop to the `postgres` system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServiceUnavailable("running as root but no `postgres` user exists") from error
    return ["runuser", "-u", "postgres", "--"]


def start_postgres(port: int | None = None, log_file: Path | None = None) -> Postgres:
    """Create a throwaway PostgreSQL cluster in a temp dir and start it on loopback."""
    bin_dir = postgres_bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="pgcluster-"))
    data_dir = workdir / "data"
    password_file = workdir / "pwfile"
    password = "local-test-only"  # noqa: S105 (a throwaway loopback cluster)
    password_file.write_text(password + "\n")
    prefix = _run_as_postgres_user()
    if prefix:
        shutil.chown(workdir, user="postgres")
        shutil.chown(password_file, user="postgres")
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
         "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = port or free_port()
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 (held by the child)
    process = subprocess.Popen(
        [*prefix, str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port),
         "-c", f"listen_addresses={LOOPBACK}", "-c", f"unix_socket_directories={workdir}",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    service = Postgres(port=port, process=process, workdir=workdir, password=password)
    try:
        wait_for_port(port, process, "PostgreSQL")
        _wait_until_accepting(bin_dir, port)
    except ServiceUnavailable:
        service.stop()
        raise
    return service


def _wait_until_accepting(bin_dir: Path, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", LOOPBACK, "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise ServiceUnavailable(f"PostgreSQL on port {port} did not accept connections")


def odbc_driver_installed(name: str) -> bool:
    """True when unixODBC knows the driver `name` (as listed in odbcinst.ini)."""
    import pyodbc

    return name in pyodbc.drivers()


def require_odbc_driver(name: str, debian_package: str) -> None:
    if not odbc_driver_installed(name):
        raise ServiceUnavailable(
            f"ODBC driver {name!r} is not installed: run `make deps` "
            f"(installs the Debian package {debian_package})"
        )


def sqlite_odbc_connection_string(database: Path) -> str:
    return f"Driver={{SQLite3}};Database={database};"


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C), for the main loop of a dev process."""
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
