"""Log records to Application Insights with their fields as custom dimensions.

The Python worker forwards only a record's message text to the Functions host, so the
fields `shared.log_fields.log_event` attaches would never reach `customDimensions`. With
`APPLICATIONINSIGHTS_CONNECTION_STRING` set, function_app.py calls
`export_logs_to_application_insights` once at start-up: the Azure Monitor OpenTelemetry
distro then exports every record of the root logger, its `extra` fields as properties
(`customDimensions.<field>` in the `traces` table). Together with `"telemetryMode":
"OpenTelemetry"` in host.json and `PYTHON_ENABLE_OPENTELEMETRY=true` (the worker then stops
piping the same records to the host) each line is stored once, with its fields. The
exporter authenticates with the identity named in `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`
(it reads that setting itself), as the host does.

Without a connection string nothing is configured: locally records go to the console only.
"""

from __future__ import annotations

import logging
import os

from shared.config import TelemetrySettings

log = logging.getLogger(__name__)

# The Azure SDK logs every HTTP request at INFO, the exporter's own posts to the ingestion
# endpoint included: exported, those lines would feed the exporter with lines about itself.
AZURE_SDK_LOGGER = "azure"

# The resource (cloud role name, ...) is the function app's, as the Python worker sets it
# when it configures the distro; the distro's default detectors would also ask the virtual
# machine metadata service, which a function app is not.
RESOURCE_DETECTORS = ("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")

_exporting = False


def export_logs_to_application_insights(settings: TelemetrySettings) -> bool:
    """Configure the distro once, if a connection string is set; whether this call did."""
    global _exporting
    if _exporting or not settings.connection_string:
        return False
    if settings.worker_streams_telemetry:
        # The worker configured the distro before it imported the app: a second
        # configuration would export every record twice.
        return False
    # Imported here: loading the distro and its instrumentations takes time a local run,
    # which never exports, need not spend.
    from azure.monitor.opentelemetry import configure_azure_monitor

    os.environ.setdefault(*RESOURCE_DETECTORS)
    configure_azure_monitor(connection_string=settings.connection_string, logger_name="")
    logging.getLogger(AZURE_SDK_LOGGER).setLevel(logging.WARNING)
    _exporting = True
    if not settings.worker_opentelemetry:
        log.warning("PYTHON_ENABLE_OPENTELEMETRY is not true: the worker also pipes every log "
                    "record to the host, so Application Insights stores each line twice "
                    "(once without its fields)")
    return True
