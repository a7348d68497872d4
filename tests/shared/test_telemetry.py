"""shared.telemetry: with a connection string, the app's start-up (function_app.py) makes
the real Azure Monitor distro export each log record with its fields as properties, i.e.
`customDimensions`; without one nothing is configured.

The export runs in a child process (the distro sets process-wide providers and handlers)
against a fake ingestion endpoint served here: the connection string points the exporter
at it, so the envelopes asserted on are the ones Application Insights would receive.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.config import TelemetrySettings
from shared.telemetry import export_logs_to_application_insights

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTRUMENTATION_KEY = "00000000-0000-4000-8000-000000000017"


class FakeIngestion:
    """Application Insights' track endpoint: keeps every envelope posted to it."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, dict[str, Any]]] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                items = json.loads(body) if body else []
                received.extend((self.path, item) for item in items)
                answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items),
                                     "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def connection_string(self) -> str:
        # Every endpoint here: nothing the exporter sends may leave this machine.
        return (f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url};"
                f"LiveEndpoint={self.url}")

    def messages(self) -> list[dict[str, Any]]:
        """The trace (MessageData) envelopes posted to /v2.1/track."""
        return [item for path, item in self.envelopes
                if path == "/v2.1/track" and item["data"]["baseType"] == "MessageData"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ingestion() -> Iterator[FakeIngestion]:
    fake = FakeIngestion()
    yield fake
    fake.close()


# The app starts as the worker starts it (function_app imported), then an activity logs.
APP_LOGS_AN_EVENT = textwrap.dedent("""
    import logging
    import function_app
    from opentelemetry._logs import get_logger_provider
    from shared.log_fields import log_event

    logging.getLogger().setLevel(logging.INFO)  # the worker's root level
    log_event(logging.getLogger("shared.bulkload.load_events"), "bulk load ended",
              level=logging.WARNING, load_id="accounts-2026-11-23", outcome="failed",
              levels=2, loaded_records=40, failed_records=3)
    logging.getLogger("azure.core.pipeline").info("Request URL: 'https://example.invalid/'")
    provider = get_logger_provider()
    if hasattr(provider, "force_flush"):  # an SDK provider: the export was configured
        provider.force_flush()
    print(type(provider).__name__)
""")


def _run_app(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith(("APPLICATIONINSIGHTS_", "PYTHON_ENABLE_OPENTELEMETRY",
                                       "PYTHON_APPLICATIONINSIGHTS_", "OTEL_"))}
    environ.update({
        "PYTHONPATH": str(REPO_ROOT),
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        # The SDK's own usage reports and its remote configuration go to Microsoft's
        # endpoints, which a test never reaches.
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "TMPDIR": str(tmp_path),  # the exporter's retry files, if any
        **settings,
    })
    return subprocess.run([sys.executable, "-c", APP_LOGS_AN_EVENT], cwd=REPO_ROOT,
                          env=environ, capture_output=True, text=True, timeout=120)


def test_the_app_exports_an_events_fields_as_custom_dimensions(
        ingestion: FakeIngestion, tmp_path: Path) -> None:
    run = _run_app(tmp_path, APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string,
                   PYTHON_ENABLE_OPENTELEMETRY="true")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "LoggerProvider"

    [trace] = ingestion.messages()  # the Azure SDK's INFO line is not exported
    assert trace["iKey"] == INSTRUMENTATION_KEY
    data = trace["data"]["baseData"]
    assert data["message"] == ("bulk load ended: load_id=accounts-2026-11-23, outcome=failed, "
                               "levels=2, loaded_records=40, failed_records=3")
    assert data["severityLevel"] == 2  # Warning
    properties = data["properties"]  # what KQL reads as customDimensions
    assert {name: properties.get(name) for name in (
        "event", "load_id", "outcome", "levels", "loaded_records", "failed_records")} == {
        "event": "bulk load ended", "load_id": "accounts-2026-11-23", "outcome": "failed",
        "levels": "2", "loaded_records": "40", "failed_records": "3"}


def test_without_a_connection_string_the_app_exports_nothing(
        ingestion: FakeIngestion, tmp_path: Path) -> None:
    run = _run_app(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "ProxyLoggerProvider"  # OpenTelemetry's default
    assert ingestion.envelopes == []


def test_the_app_leaves_the_distro_to_a_worker_that_configured_it() -> None:
    settings = TelemetrySettings(connection_string="InstrumentationKey=x",
                                 worker_streams_telemetry=True, worker_opentelemetry=False)
    assert export_logs_to_application_insights(settings) is False


def test_no_connection_string_configures_nothing() -> None:
    settings = TelemetrySettings(connection_string=None, worker_streams_telemetry=False,
                                 worker_opentelemetry=True)
    assert export_logs_to_application_insights(settings) is False
