"""Settings section `telemetry`: where the app's log records go, fields and all.

Azure Functions' Python worker forwards only a record's message to the host, so the
fields `shared.log_fields.log_event` attaches would be lost on the way to Application
Insights. The app therefore exports its records itself, through the Azure Monitor
OpenTelemetry distro (`shared.telemetry`), the way Microsoft documents it for Python
("Use OpenTelemetry with Azure Functions"), and these settings say whether and how.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config.framework import parse_bool, setting


@dataclass(frozen=True)
class TelemetrySettings:
    connection_string: str | None = setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="Application Insights resource the host and the app send telemetry to; "
        "when set, the app exports its log records there itself, each record's fields as "
        "custom dimensions (unset locally: records go to the console only)",
        default=None,
    )
    worker_streams_telemetry: bool = setting(
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        description="true: the Python worker configures the Azure Monitor distro itself and "
        "the app leaves it alone; the deployment sets false, as the app configures it",
        default=False,
        parse=parse_bool,
    )
    worker_opentelemetry: bool = setting(
        "PYTHON_ENABLE_OPENTELEMETRY",
        description="true: the worker stops piping log records to the host, which would "
        "store each of them a second time without its fields (the deployment sets true)",
        default=False,
        parse=parse_bool,
    )
