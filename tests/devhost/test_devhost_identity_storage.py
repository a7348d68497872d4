"""Identity-based `AzureWebJobsStorage` (service URIs + managed identity), as deployed.

Azurite runs with HTTPS and OAuth (`--oauth basic`: it checks each bearer token's issuer,
audience and lifetime). A loopback endpoint speaks the App Service managed identity
protocol (`IDENTITY_ENDPOINT` / `IDENTITY_HEADER`) and hands out such tokens, so the
host's ManagedIdentityCredential gets real tokens over HTTP, and every storage call the
durable engine makes carries one.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devhost.testing import LOOPBACK, RunningHost, free_port
from devtools import services
from tests.devhost.conftest import sample_app
from tests.devhost.test_devhost_durable_e2e import wait_until_done

IDENTITY_HEADER = "local-identity-header"
CLIENT_ID = "00000000-0000-0000-0000-00000000c11e"


def write_loopback_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own trust anchor) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenEndpoint:
    """The App Service managed identity endpoint, issuing tokens Azurite accepts."""

    requests: list[dict[str, str]] = field(default_factory=list)

    def serve(self) -> ThreadingHTTPServer:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                    self.send_response(401)
                    self.end_headers()
                    return
                endpoint.requests.append(query)
                now = int(time.time())
                claims = {"aud": query["resource"], "iss": "https://sts.windows.net/local/",
                          "iat": now, "nbf": now - 60, "exp": now + 3600,
                          "appid": query.get("client_id", "")}
                token = ".".join([_b64(b'{"alg":"none","typ":"JWT"}'),
                                  _b64(json.dumps(claims).encode()), _b64(b"unsigned")])
                body = json.dumps({"access_token": token, "expires_on": str(now + 3600),
                                   "resource": query["resource"], "token_type": "Bearer"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def oauth_azurite(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """Azurite over HTTPS with OAuth; yields the service URIs and the certificate."""
    cert, key = write_loopback_certificate(tmp_path)
    ports = {service: free_port() for service in ("blob", "queue", "table")}
    command = [str(services.azurite_executable())]
    for service, port in ports.items():
        command += [f"--{service}Host", LOOPBACK, f"--{service}Port", str(port)]
    command += ["--location", str(tmp_path / "data"), "--skipApiVersionCheck",
                "--disableProductStyleUrl", "--silent", "--oauth", "basic",
                "--cert", str(cert), "--key", str(key)]
    (tmp_path / "data").mkdir()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, cwd=tmp_path)
    try:
        for service, port in ports.items():
            services.wait_for_port(port, process, f"Azurite {service} service")
        uris = {service: f"https://{LOOPBACK}:{port}/devstoreaccount1"
                for service, port in ports.items()}
        yield uris, cert
    finally:
        services.stop_process_group(process, timeout=2)


@pytest.fixture
def token_endpoint() -> Iterator[tuple[TokenEndpoint, int]]:
    """Requested before `start_devhost`, so it outlives the hosts (they stop with tokens)."""
    tokens = TokenEndpoint()
    server = tokens.serve()
    yield tokens, server.server_port
    server.shutdown()


def test_durable_app_runs_on_identity_based_storage_with_a_managed_identity(
    token_endpoint: tuple[TokenEndpoint, int], oauth_azurite: tuple[dict[str, str], Path],
    start_devhost: Callable[..., RunningHost],
):
    uris, cert = oauth_azurite
    tokens, token_port = token_endpoint
    host = start_devhost(sample_app("durable_chaining"), env={
        "AzureWebJobsStorage": "",
        "AzureWebJobsStorage__blobServiceUri": uris["blob"],
        "AzureWebJobsStorage__queueServiceUri": uris["queue"],
        "AzureWebJobsStorage__tableServiceUri": uris["table"],
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "IDENTITY_ENDPOINT": f"http://{LOOPBACK}:{token_port}/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        # Trust the emulator's self-signed certificate (aiohttp and requests).
        "SSL_CERT_FILE": str(cert),
        "REQUESTS_CA_BUNDLE": str(cert),
    })
    started = requests.post(
        host.url("/api/orchestrators/itinerary"), params={"code": host.function_key},
        json=["Bergen", "Tromso"], timeout=10,
    )
    done = wait_until_done(started.json()["statusQueryGetUri"])

    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["booked Bergen", "booked Tromso"]
    assert "identity-based (managedidentity credential)" in host.output()
    # The user-assigned identity named by __clientId asked for storage tokens.
    assert tokens.requests
    assert {r.get("client_id") for r in tokens.requests} == {CLIENT_ID}
    assert {r["resource"] for r in tokens.requests} == {"https://storage.azure.com"}
    assert host.stop() == 0


def test_identity_based_storage_without_a_table_endpoint_stops_the_host(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "devhost", str(sample_app("durable_chaining")),
         "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2]),
             "AzureWebJobsStorage__blobServiceUri": f"https://{LOOPBACK}:9/devstoreaccount1",
             "AzureWebJobsStorage__credential": "managedidentity"},
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "AzureWebJobsStorage__tableServiceUri" in result.stderr
    assert "Host started" not in result.stdout
