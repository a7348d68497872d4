"""Benchmark app: CPU-bound activities fanned out, and a chain of trivial activities."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def spin_loop(iterations: int) -> int:
    total = 0
    for n in range(iterations):
        total += n * n % 7
    return total


@app.route(route="start/{orchestrator}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["orchestrator"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def cpu_fan_out(context: df.DurableOrchestrationContext):
    settings = context.get_input()
    return (yield context.task_all([context.call_activity("spin", settings["iterations"])
                                    for _ in range(settings["activities"])]))


@app.orchestration_trigger(context_name="context")
def trivial_chain(context: df.DurableOrchestrationContext):
    for n in range(context.get_input()):
        yield context.call_activity("trivial", n)
    return "done"


@app.activity_trigger(input_name="iterations")
def spin(iterations: int) -> int:
    return spin_loop(iterations)


@app.activity_trigger(input_name="n")
def trivial(n: int) -> int:
    return n
