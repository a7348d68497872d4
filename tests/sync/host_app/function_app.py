"""The sync capability alone, wired as function_app.py wires it, for the local-host tests."""

import azure.durable_functions as df
import azure.functions as func

from activities import sync as sync_activities
from orchestrators import sync
from shared.config import app_settings

settings = app_settings()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(sync.blueprint)  # timers, sync_run, GET /api/sync/{job}
app.register_functions(sync_activities.blueprint)
