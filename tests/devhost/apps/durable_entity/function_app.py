"""Sample app: a durable entity, which devhost does not support, used the documented ways.

The test checks that each use fails loudly, naming the reason, instead of misbehaving.
"""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def count_up(context: df.DurableOrchestrationContext):
    return (yield context.call_entity(df.EntityId("counter", "shared"), "add", 1))


@app.route(route="start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new("count_up")
    return client.create_check_status_response(req, instance_id)


@app.route(route="signal", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    await client.signal_entity(df.EntityId("counter", "shared"), "add", 1)
    return func.HttpResponse("signalled", status_code=202)
