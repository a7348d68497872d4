"""Serving the simulator: a threaded Werkzeug server on loopback, plain HTTP or TLS.

Some clients (simple-salesforce among them) always build `https://` URLs from the
instance URL, so the simulator can serve TLS with a self-signed certificate for
127.0.0.1/localhost that it writes out for clients to trust (`verify=` / REQUESTS_CA_BUNDLE,
NODE_EXTRA_CA_CERTS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sfsim.app import Simulator

LOOPBACK = "127.0.0.1"


class _RequestHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps connections alive, as clients' connection pools expect.
    protocol_version = "HTTP/1.1"


@dataclass
class RunningSimulator:
    simulator: Simulator
    server: BaseWSGIServer
    thread: threading.Thread | None
    base_url: str
    ca_file: Path | None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.simulator.close()


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 and localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sfsim local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "sfsim-cert.pem"
    key_path = directory / "sfsim-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def serve(
    simulator: Simulator,
    port: int = 0,
    host: str = LOOPBACK,
    tls_dir: Path | None = None,
    in_thread: bool = True,
    quiet: bool = True,
) -> RunningSimulator:
    """Start serving; with `in_thread` returns at once, else the caller runs serve_forever."""
    ssl_context = None
    ca_file = None
    if tls_dir is not None:
        ca_file, key_file = write_self_signed_certificate(tls_dir)
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(ca_file, key_file)
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(
        host, port, simulator, threaded=True, request_handler=_RequestHandler,
        ssl_context=ssl_context,
    )
    scheme = "https" if ssl_context else "http"
    base_url = f"{scheme}://{host}:{server.server_port}"
    thread = None
    if in_thread:
        thread = threading.Thread(target=server.serve_forever, name="sfsim", daemon=True)
        thread.start()
    return RunningSimulator(simulator, server, thread, base_url, ca_file)
