"""Sample app: wait for an approval event or give up when a durable timer fires."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="requests", methods=["POST"])
@app.durable_client_input(client_name="client")
async def submit_request(req: func.HttpRequest, client):
    instance_id = await client.start_new("approval_workflow", None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.route(route="requests/{instance_id}/approve", methods=["POST"])
@app.durable_client_input(client_name="client")
async def approve(req: func.HttpRequest, client):
    await client.raise_event(req.route_params["instance_id"], "Approved", True)
    return func.HttpResponse(status_code=202)


@app.orchestration_trigger(context_name="context")
def approval_workflow(context: df.DurableOrchestrationContext):
    timeout_seconds = context.get_input()["timeout_seconds"]
    deadline = context.current_utc_datetime + timedelta(seconds=timeout_seconds)
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("Approved")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
        return (yield context.call_activity("record_decision", "approved"))
    return (yield context.call_activity("record_decision", "escalated"))


@app.activity_trigger(input_name="decision")
def record_decision(decision: str) -> str:
    return decision
