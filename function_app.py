"""The wiring diagram: one Durable Functions app, one blueprint per capability.

Settings are read and validated here, at start-up, so a misconfigured deployment fails
with the full list of bad settings before any trigger fires.
"""

import azure.durable_functions as df
import azure.functions as func

from orchestrators import health
from shared.config import load_settings

settings = load_settings()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(health.blueprint)  # GET /api/health
