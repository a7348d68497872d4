"""`python -m sfsim`: its banner, its settings, its refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from sfsim.testing import free_port
from shared.salesforce import SalesforceClient, SalesforceCredentials


def test_python_m_sfsim_prints_credentials_and_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sfsim", "--port", str(port), "--job-delay", "0",
         "--jwt-keys", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        banner = [process.stdout.readline() for _ in range(6)]  # type: ignore[union-attr]
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text
        assert "sfsim-client-id" in text and "sfsim-client-secret" in text
        assert "integration@sfsim.example" in text
        config = requests.get(f"http://127.0.0.1:{port}/_sim/config", timeout=10).json()
        assert config["job_delay_seconds"] == 0.0
        assert str(tmp_path / "jwt-private-key.pem") in text
        client = SalesforceClient(SalesforceCredentials(
            f"http://127.0.0.1:{port}", "sfsim-client-id", grant="jwt_bearer",
            username="integration@sfsim.example",
            private_key_pem=(tmp_path / "jwt-private-key.pem").read_text(),
        ))
        assert client.create_ingest_job("Account", "insert").state == "Open"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_python_m_sfsim_refuses_bad_settings() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sfsim", "--port", "0"],
        env={"SFSIM_ERROR_RATE_5XX": "2", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert completed.returncode == 2
    assert "error_rate_5xx is a fraction" in completed.stderr
