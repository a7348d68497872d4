"""The wiring diagram: one Durable Functions app, one blueprint per capability.

Settings are read and validated here, at start-up, so a misconfigured deployment fails
with the full list of bad settings before any trigger fires. With an Application Insights
connection string the app's log records are exported from here on, fields and all.
"""

import azure.durable_functions as df
import azure.functions as func

from activities import batch as batch_activities
from activities import bulk_load as bulk_load_activities
from activities import events as event_activities
from activities import sync as sync_activities
from orchestrators import batch, bulk_load, console, events, health, openapi, sync
from shared.config import app_settings
from shared.telemetry import export_logs_to_application_insights

settings = app_settings()
export_logs_to_application_insights(settings.telemetry)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(health.blueprint)  # GET /api/health
app.register_functions(openapi.blueprint)  # GET /api/openapi.json: the API's description
app.register_functions(console.blueprint)  # GET /api/console: the operations page

# Scheduled change sync (seed 000 + 003): timer per job -> singleton run `sync-<job>`
#   -> page activities -> watermark; POST /api/sync/{job}/run, GET /api/sync/{job}
app.register_functions(sync.blueprint)
app.register_functions(sync_activities.blueprint)

# Parent-child Bulk API 2.0 loads (seed 002): POST /api/bulk-loads -> bulk_load
#   orchestration -> stage, create, upload, poll, map ids, next level;
#   GET /api/bulk-loads/{loadId}/failures
app.register_functions(bulk_load.blueprint)
app.register_functions(bulk_load_activities.blueprint)

# Mule-Batch jobs (seed 004): POST /api/batch-jobs/{job} -> stage blocks -> batch_job
#   orchestration -> block steps, aggregator groups, on-complete; GET .../{instanceId};
#   hourly purge of finished instances past BATCH_INSTANCE_RETENTION
app.register_functions(batch.blueprint)
app.register_functions(batch_activities.blueprint)

# Event queue (seed 001): POST /api/events -> queue table -> singleton drain `event-drain`
#   (batches, continue_as_new while events are due); safety timer; GET /api/events,
#   POST /api/events/drain
app.register_functions(events.blueprint)
app.register_functions(event_activities.blueprint)
