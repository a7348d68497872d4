"""Serving the simulator: a threaded Werkzeug server on loopback, plain HTTP or TLS.

Some clients (simple-salesforce among them) always build `https://` URLs from the
instance URL, so the simulator can serve TLS with a self-signed certificate for
127.0.0.1/localhost that it writes out for clients to trust (`verify=` / REQUESTS_CA_BUNDLE,
NODE_EXTRA_CA_CERTS).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

from sfsim.app import Simulator

LOOPBACK = "127.0.0.1"
_REQUEST_LOG = logging.getLogger("werkzeug")
IDLE_SECONDS = 60.0  # an idle kept-alive connection is closed after this long


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 with connections kept alive between requests, as Salesforce keeps them.

    Werkzeug's own handler answers every request with `Connection: close` (it cannot tell
    where a request body ends), so each call would pay for a new connection and a new
    server thread, which Salesforce's clients do not. Here the body is read to its
    declared end (Content-Length, or the last chunk), the answer goes out with its length
    (or chunked), and the connection serves the next request unless the client asked to
    close it. Open connections are tracked, so that stopping the server closes them: a
    client's pooled connection must not reach a stopped simulator.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Werkzeug formats the line (a date among it) before its logger drops it.
        if _REQUEST_LOG.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def setup(self) -> None:
        super().setup()
        # Head and body go out in one write; small answers must not wait for an ACK.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _connections(self.server).add(self.connection)

    def finish(self) -> None:
        _connections(self.server).discard(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        body: Any = environ["wsgi.input"]
        if not environ.get("wsgi.input_terminated"):  # not chunked: ends at Content-Length
            body = LimitedStream(cast(IO[bytes], self.rfile),
                                 int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = body
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: None  # the legacy write() callable: not used by the simulator

        try:
            chunks: Iterable[bytes] = self.server.app(environ, start_response)
            try:
                self._send(answer[0], answer[1], iter(chunks), environ["REQUEST_METHOD"])
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            while body.read(65536):  # what the application left unread
                pass
        except (ConnectionError, TimeoutError) as error:
            self.connection_dropped(error, environ)
            self.close_connection = True
        except Exception:
            self.close_connection = True
            raise

    def _send(self, status: str, headers: list[tuple[str, str]], chunks: Any,
              method: str) -> None:
        code = int(status.split(None, 1)[0])
        names = {name.lower() for name, _ in headers}
        bodyless = method == "HEAD" or 100 <= code < 200 or code in (204, 304)
        chunked = not bodyless and "content-length" not in names
        lines = [f"{self.protocol_version} {status}", f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers
                  if name.lower() != "connection"]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(code)
        first = b"" if bodyless else next(chunks, b"")
        self.wfile.write(head + _framed(first, chunked))
        for data in () if bodyless else chunks:
            if data:
                self.wfile.write(_framed(data, chunked))
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def _framed(data: bytes, chunked: bool) -> bytes:
    if not chunked or not data:
        return data
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _connections(server: Any) -> set[Any]:
    connections: set[Any] | None = getattr(server, "open_connections", None)
    if connections is None:
        connections = server.open_connections = set()
    return connections


def close_open_connections(server: Any) -> None:
    """End the connections a stopped server still holds open (idle, kept alive)."""
    for connection in list(_connections(server)):
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


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
        close_open_connections(self.server)
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
        host, port, simulator, threaded=True, request_handler=KeepAliveHandler,
        ssl_context=ssl_context,
    )
    scheme = "https" if ssl_context else "http"
    base_url = f"{scheme}://{host}:{server.server_port}"
    thread = None
    if in_thread:
        thread = threading.Thread(target=server.serve_forever, name="sfsim", daemon=True)
        thread.start()
    return RunningSimulator(simulator, server, thread, base_url, ca_file)
