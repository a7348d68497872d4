"""Start a simulator for tests and talk to its admin endpoints.

    with start_simulator() as sim:            # a thread in this process, free loopback port
        sim.base_url, sim.client_id, sim.client_secret, sim.username
        sim.configure(job_delay_seconds=0, next_failures=[503])
        sim.records("Account"); sim.reset(); sim.expire_tokens()

`start_simulator(in_subprocess=True)` runs `python -m sfsim` in its own process instead
(what a benchmark wants, so that the simulator's memory is not counted as the client's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from sfsim.app import Simulator
from sfsim.server import LOOPBACK, RunningSimulator, serve
from sfsim.settings import SimSettings


@dataclass
class SimulatorHandle:
    base_url: str
    client_id: str
    client_secret: str
    username: str
    ca_file: Path | None = None
    simulator: Simulator | None = None  # only for an in-process simulator
    _running: RunningSimulator | None = None
    _process: subprocess.Popen | None = None
    _session: requests.Session = field(default_factory=requests.Session)

    @property
    def login_url(self) -> str:
        return self.base_url

    def app_settings(self) -> dict[str, str]:
        """The app settings (SALESFORCE_*) that point the app's client at this simulator."""
        return {
            "SALESFORCE_LOGIN_URL": self.base_url,
            "SALESFORCE_CLIENT_ID": self.client_id,
            "SALESFORCE_CLIENT_SECRET": self.client_secret,
            "SALESFORCE_AUTH_GRANT": "client_credentials",
        }

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_sim/{path}", verify=str(self.ca_file or True),
            timeout=30, **kwargs,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"sfsim admin {method} {path}: {response.status_code} "
                               f"{response.text}")
        return response.json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings (faults, limits, delays, credentials) of the running simulator."""
        return self._admin("PATCH", "config", json=changes)

    def config(self) -> dict[str, Any]:
        return self._admin("GET", "config")

    def reset(self) -> None:
        """Empty the org (records, jobs, tokens' usage, request log) and clear faults."""
        self._admin("POST", "reset")

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return self._admin("GET", f"records/{sobject}")

    def insert_records(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        return self._admin("POST", f"records/{sobject}", json=records)["ids"]

    def expire_tokens(self) -> int:
        return self._admin("POST", "tokens/expire")["expired"]

    def requests_log(self) -> list[dict[str, Any]]:
        return self._admin("GET", "requests")

    def clear_requests_log(self) -> None:
        self._admin("DELETE", "requests")

    def usage(self) -> dict[str, Any]:
        return self._admin("GET", "usage")

    def define_object(self, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        return self._admin("PUT", f"objects/{name}", json=definition)

    def stop(self, stop_signal: int = signal.SIGTERM) -> None:
        """Stop the simulator; a simulator process gets `stop_signal` (SIGKILL: no save)."""
        self._session.close()
        if self._running is not None:
            self._running.stop()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, stop_signal)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def start_simulator(
    settings: SimSettings | None = None,
    tls: bool = False,
    in_subprocess: bool = False,
    env: dict[str, str] | None = None,
    tls_dir: Path | None = None,
) -> SimulatorHandle:
    """Start a simulator on a free loopback port and return its handle once it answers."""
    settings = settings or SimSettings()
    directory = tls_dir or (Path(tempfile.mkdtemp(prefix="sfsim-tls-")) if tls else None)
    if not in_subprocess:
        simulator = Simulator(settings)
        running = serve(simulator, port=0, tls_dir=directory)
        handle = SimulatorHandle(
            base_url=running.base_url, client_id=settings.client_id,
            client_secret=settings.client_secret, username=settings.username,
            ca_file=running.ca_file, simulator=simulator, _running=running,
        )
        _wait_until_ready(handle)
        return handle
    return _start_process(settings, directory, env)


def _start_process(
    settings: SimSettings, tls_dir: Path | None, env: dict[str, str] | None
) -> SimulatorHandle:
    import subprocess as sp

    port = free_port()
    command = [sys.executable, "-m", "sfsim", "--port", str(port)]
    if tls_dir is not None:
        command += ["--tls", str(tls_dir)]
    environment = dict(os.environ, **(env or {}))
    environment.update(
        SFSIM_CLIENT_ID=settings.client_id,
        SFSIM_CLIENT_SECRET=settings.client_secret,
        SFSIM_USERNAME=settings.username,
        SFSIM_JOB_DELAY=str(settings.job_delay_seconds),
        SFSIM_TOKEN_TTL=str(settings.token_ttl_seconds),
        SFSIM_STATE=settings.state_file or "",
    )
    # The simulator logs every request: a file, not a pipe nobody drains, takes them.
    log = tempfile.NamedTemporaryFile(prefix="sfsim-", suffix=".log", delete=False)  # noqa: SIM115
    process = sp.Popen(
        command, env=environment, start_new_session=True,
        stdout=sp.DEVNULL, stderr=log,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    log.close()
    process.log_file = log.name  # type: ignore[attr-defined]
    scheme = "https" if tls_dir is not None else "http"
    handle = SimulatorHandle(
        base_url=f"{scheme}://{LOOPBACK}:{port}", client_id=settings.client_id,
        client_secret=settings.client_secret, username=settings.username,
        ca_file=(tls_dir / "sfsim-cert.pem") if tls_dir else None, _process=process,
    )
    try:
        _wait_until_ready(handle, process)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_until_ready(handle: SimulatorHandle, process: Any = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            errors = Path(process.log_file).read_text(errors="replace")[-4000:]
            raise RuntimeError(f"sfsim exited with code {process.returncode}: {errors}")
        try:
            handle.config()
            return
        # OSError covers requests' errors and a CA file the TLS process has not written yet.
        except (OSError, RuntimeError) as error:
            last_error = error
            time.sleep(0.05)
    raise RuntimeError(f"sfsim did not answer at {handle.base_url} within {timeout}s: "
                       f"{last_error}")


def generate_jwt_key_pair() -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM) for a JWT-bearer connected app."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sfsim connected app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@contextlib.contextmanager
def running_simulator(**kwargs: Any) -> Iterator[SimulatorHandle]:
    handle = start_simulator(**kwargs)
    try:
        yield handle
    finally:
        handle.stop()
