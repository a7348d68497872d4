"""Sample app: a parent orchestration runs one sub-orchestration per payment (blueprint)."""

import azure.durable_functions as df
import azure.functions as func
from payments import blueprint

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(blueprint)


@app.route(route="orders", methods=["POST"])
@app.durable_client_input(client_name="client")
async def settle_orders(req: func.HttpRequest, client):
    instance_id = await client.start_new("settle_orders_run", None, req.get_json())
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=30000, retry_interval_in_milliseconds=200
    )


@app.orchestration_trigger(context_name="context")
def settle_orders_run(context: df.DurableOrchestrationContext):
    payments = context.get_input()
    results = yield context.task_all(
        [
            context.call_sub_orchestrator(
                "settle_payment", payment, f"{context.instance_id}:{payment['order']}"
            )
            for payment in payments
        ]
    )
    return results
