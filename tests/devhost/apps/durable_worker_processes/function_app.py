"""Sample app: activities that say which process ran them, fail, log, overrun the timeout
or kill their process; the orchestrators report what they saw."""

import asyncio
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from shared.crash_points import crash_point

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
log = logging.getLogger("worker_processes_app")

WORKER_CRASH_POINT = "devhost_test.activity.kill_worker"

if os.environ.get("TEST_FAIL_IMPORT_IN_WORKER") and multiprocessing.parent_process():
    raise RuntimeError("this app cannot be imported in a worker process")

if os.environ.get("TEST_HANG_IMPORT_AFTER_FIRST_TWO") and multiprocessing.parent_process():
    # the first two workers load the app; a worker started again hangs in its import
    loads = Path(os.environ["TEST_HANG_IMPORT_AFTER_FIRST_TWO"])
    if len(list(loads.iterdir())) >= 2:
        time.sleep(3600)
    (loads / str(os.getpid())).touch()

if os.environ.get("TEST_WORKER_EXITS_AFTER_LOAD") and multiprocessing.parent_process():
    # a worker that loads the app, then dies while idle, every time it is started
    threading.Timer(float(os.environ["TEST_WORKER_EXITS_AFTER_LOAD"]), os._exit, (5,)).start()


@app.route(route="pid", methods=["GET"])
def host_pid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.route(route="start/{orchestrator}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["orchestrator"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def pids_of_a_pair(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    return (yield context.task_all([context.call_activity("report_pid", seconds),
                                    context.call_activity("report_pid_async", seconds)]))


@app.orchestration_trigger(context_name="context")
def failure_seen(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity(context.get_input(), 7)
    except Exception as error:  # the SDK raises a bare Exception for a failed activity
        return str(error).splitlines()[0]
    return "no failure"


@app.orchestration_trigger(context_name="context")
def crash_then_carry_on(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("kill_worker", None)
        seen = "no failure"
    except Exception as error:
        seen = str(error).splitlines()[0]
    after = yield context.call_activity("report_pid", 0)
    return {"seen": seen, "after": after}


@app.orchestration_trigger(context_name="context")
def pids_of_a_fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    return (yield context.task_all([
        context.call_activity("report_pid" if n % 2 else "report_pid_async", 0.2)
        for n in range(count)]))


@app.orchestration_trigger(context_name="context")
def large_round_trip(context: df.DurableOrchestrationContext):
    text = yield context.call_activity("make_text", context.get_input())
    return (yield context.call_activity("describe_text", text))


@app.activity_trigger(input_name="size")
def make_text(size: int) -> str:
    # non-ASCII and a lone surrogate, as text read from a badly encoded source can hold
    return ("\u00e9\u4e2d\U0001f600\udc80" * (size // 4 + 1))[:size]


@app.activity_trigger(input_name="text")
def describe_text(text: str) -> dict:
    return {"length": len(text), "distinct": sorted(set(text)), "pid": os.getpid()}


@app.activity_trigger(input_name="seconds")
def report_pid(seconds: float) -> int:
    log.info("report_pid ran in process %d", os.getpid())
    time.sleep(seconds)
    return os.getpid()


@app.activity_trigger(input_name="seconds")
async def report_pid_async(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


@app.activity_trigger(input_name="number")
def raise_value_error(number: int) -> None:
    raise ValueError(f"bad input {number}")


class QuotaExhausted(Exception):
    """An exception of the app's own."""


@app.activity_trigger(input_name="number")
def raise_app_error(number: int) -> None:
    raise QuotaExhausted(f"quota {number} used up")


@app.activity_trigger(input_name="number")
def raise_key_error(number: int) -> None:
    raise KeyError(f"row {number}")


@app.activity_trigger(input_name="number")
def return_unencodable(number: int) -> object:
    return {number}  # a set: no JSON for it


@app.activity_trigger(input_name="number")
async def exit_async(number: int) -> None:
    sys.exit(number)  # a library giving up on the process


@app.activity_trigger(input_name="number")
def exit_in_thread(number: int) -> None:
    sys.exit(number)


@app.activity_trigger(input_name="number")
def overrun_timeout(number: int) -> int:
    log.info("overrun_timeout runs in process %d", os.getpid())
    time.sleep(6)
    return number


@app.activity_trigger(input_name="ignored")
def kill_worker(ignored: None) -> None:
    crash_point(WORKER_CRASH_POINT)
    os._exit(3)
