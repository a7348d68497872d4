"""Sample app: three steps, each writing to a journal when it runs; the second is slow."""

import json
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def write_journal(step: str, event: str) -> None:
    with open(os.environ["CRASH_JOURNAL"], "a", encoding="utf-8") as journal:
        journal.write(json.dumps({"step": step, "event": event}) + "\n")


@app.route(route="start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client):
    instance_id = await client.start_new("three_steps", None, None)
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def three_steps(context: df.DurableOrchestrationContext):
    done = []
    for step in ("first", "second", "third"):
        done.append((yield context.call_activity("run_step", step)))
    return done


@app.activity_trigger(input_name="step")
def run_step(step: str) -> str:
    write_journal(step, "started")
    if step == "second":
        time.sleep(4)
    write_journal(step, "finished")
    return step
