"""Sample app: an activity that fails before it succeeds, called with retries."""

import collections
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_attempts: collections.Counter = collections.Counter()
_attempts_lock = threading.Lock()


@app.route(route="start/{orchestrator}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["orchestrator"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def flaky_with_retries(context: df.DurableOrchestrationContext):
    settings = context.get_input()
    retry = df.RetryOptions(
        first_retry_interval_in_milliseconds=500,
        max_number_of_attempts=settings["max_attempts"],
    )
    return (yield context.call_activity_with_retry(
        "flaky_call", retry, {"key": context.instance_id, "fail_times": settings["fail_times"]}
    ))


@app.activity_trigger(input_name="request")
def flaky_call(request: dict) -> dict:
    with _attempts_lock:
        _attempts[request["key"]] += 1
        attempt = _attempts[request["key"]]
    if attempt <= request["fail_times"]:
        raise ConnectionError(f"attempt {attempt} failed")
    return {"succeeded_on_attempt": attempt}
