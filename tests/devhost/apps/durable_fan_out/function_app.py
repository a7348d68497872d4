"""Sample app: fan-out/fan-in; each activity reports how many activities ran with it."""

import threading
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_running = 0
_running_lock = threading.Lock()


@app.route(route="fan-out/{count:int}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_fan_out(req: func.HttpRequest, client):
    instance_id = await client.start_new("sum_squares", None, int(req.route_params["count"]))
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=30000, retry_interval_in_milliseconds=200
    )


@app.orchestration_trigger(context_name="context")
def sum_squares(context: df.DurableOrchestrationContext):
    count = context.get_input()
    results = yield context.task_all(
        [context.call_activity("square", number) for number in range(1, count + 1)]
    )
    return {
        "sum": sum(result["square"] for result in results),
        "max_parallel": max(result["parallel"] for result in results),
    }


@app.activity_trigger(input_name="number")
def square(number: int) -> dict:
    global _running
    with _running_lock:
        _running += 1
        parallel = _running
    time.sleep(0.3)
    with _running_lock:
        parallel = max(parallel, _running)
        _running -= 1
    return {"square": number * number, "parallel": parallel}
