"""Sample app: one orchestration that waits for a `go` event and returns its data."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def waits_for_go(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("go")
    return value
