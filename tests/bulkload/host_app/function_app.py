"""The bulk-load capability alone, wired as function_app.py wires it, for the host tests."""

import azure.durable_functions as df
import azure.functions as func

from activities import bulk_load as bulk_load_activities
from orchestrators import bulk_load
from shared.config import app_settings

settings = app_settings()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(bulk_load.blueprint)  # POST /api/bulk-loads, bulk_load, failures
app.register_functions(bulk_load_activities.blueprint)


# Another orchestration in the same task hub, as the sync runs `sync-<job>` are in the app:
# the load endpoints must not take its instances for loads.
@app.orchestration_trigger(context_name="context")
def other_orchestration(context: df.DurableOrchestrationContext):
    return "not a load"
