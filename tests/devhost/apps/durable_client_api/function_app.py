"""Sample app: every durable client operation behind a small HTTP API."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def json_response(value: object, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(value), status_code=status_code, mimetype="application/json"
    )


@app.route(route="start/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    try:
        instance_id = await client.start_new(
            req.route_params["name"],
            req.route_params.get("instance_id"),
            json.loads(body) if body else None,
        )
    except Exception as error:
        return json_response({"refused": str(error)}, 409)
    return client.create_check_status_response(req, instance_id)


@app.route(route="start-unguarded/{name}/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_unguarded(req: func.HttpRequest, client) -> func.HttpResponse:
    """Lets a refused start_new fail the function, as an app that does not expect it."""
    instance_id = await client.start_new(req.route_params["name"],
                                         req.route_params["instance_id"], None)
    return client.create_check_status_response(req, instance_id)


@app.route(route="run/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def run_and_wait(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=8000, retry_interval_in_milliseconds=100
    )


@app.route(route="status/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instance_id"], show_input=True)
    if not found:
        return json_response({"exists": False}, 404)
    return json_response(
        {
            "exists": True,
            "name": found.name,
            "runtimeStatus": found.runtime_status.value,
            "input": found.input_,
            "output": found.output,
            "customStatus": found.custom_status,
        }
    )


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_instances(req: func.HttpRequest, client) -> func.HttpResponse:
    wanted = req.params.get("status")
    if wanted:
        found = await client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus(wanted)],
            instance_id_prefix=req.params.get("prefix"),
        )
    else:
        found = await client.get_status_all()
    return json_response(sorted(item.instance_id for item in found))


@app.route(route="raise/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client) -> func.HttpResponse:
    try:
        await client.raise_event(
            req.route_params["instance_id"], req.route_params["event"], req.get_json()
        )
    except Exception as error:
        return json_response({"refused": str(error)}, 409)
    return json_response({"raised": True}, 202)


@app.route(route="terminate/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], "stopped by test")
    return json_response({"terminated": True}, 202)


@app.route(route="purge/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return json_response({"instancesDeleted": result.instances_deleted})


@app.orchestration_trigger(context_name="context")
def greeting_chain(context: df.DurableOrchestrationContext):
    names = context.get_input() or ["Tokyo", "Seattle", "London"]
    greetings = []
    for name in names:
        greetings.append((yield context.call_activity("say_hello", name)))
        context.set_custom_status({"greeted": len(greetings)})
    return greetings


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    approver = yield context.wait_for_external_event("Approval")
    # In Azure, data sent with the Python client's raise_event arrives JSON-encoded twice
    # (azure-functions-durable-python issue 295), so a dict comes back as its JSON text.
    if isinstance(approver, str):
        approver = json.loads(approver)
    return f"approved by {approver['name']}"


@app.orchestration_trigger(context_name="context")
def failing_chain(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", None)
    return "unreachable"


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}!"


@app.activity_trigger(input_name="payload")
def explode(payload: None) -> str:
    raise ValueError("the activity exploded")


class ReportRefused(Exception):
    """A decision of the app: the orchestration ends failed, on purpose."""


@app.orchestration_trigger(context_name="context")
def refusing(context: df.DurableOrchestrationContext):
    raise ReportRefused("this report was sent already; start a new one")
    yield  # a generator, as orchestrators are


@app.orchestration_trigger(context_name="context")
def buggy(context: df.DurableOrchestrationContext):
    settings: dict = {}
    yield context.call_activity("say_hello", settings["missing"])
