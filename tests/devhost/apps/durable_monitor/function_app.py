"""Sample app: a monitor that polls on a durable timer and restarts with continue_as_new."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="monitor", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_monitor(req: func.HttpRequest, client):
    instance_id = await client.start_new("job_monitor", None, {"polls": [], "target": 3})
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def job_monitor(context: df.DurableOrchestrationContext):
    state = context.get_input()
    state["polls"].append(context.current_utc_datetime.isoformat())
    context.set_custom_status({"polls": len(state["polls"])})
    if len(state["polls"]) >= state["target"]:
        report = yield context.call_activity("job_report", state)
        return {"polls": state["polls"], "report": report}
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    context.continue_as_new(state)


@app.activity_trigger(input_name="state")
def job_report(state: dict) -> str:
    return f"finished after {len(state['polls'])} polls"
