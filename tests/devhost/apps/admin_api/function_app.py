"""Sample app: what the admin API, disabled functions, functionTimeout and CORS act on."""

import asyncio
import json
import os
import time
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def write_journal(function: str, timer: func.TimerRequest) -> None:
    entry = {"function": function, "at": datetime.now(UTC).isoformat(),
             "past_due": timer.past_due}
    with open(os.environ["ADMIN_JOURNAL"], "a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry) + "\n")


@app.timer_trigger(schedule="0 0 3 1 1 *", arg_name="timer")
def yearly_report(timer: func.TimerRequest) -> None:
    write_journal("yearly_report", timer)


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def switched_off_tick(timer: func.TimerRequest) -> None:
    write_journal("switched_off_tick", timer)


@app.route(route="hello", methods=["GET", "POST"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")


@app.route(route="switched-off")
def switched_off(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("should not answer")


@app.route(route="refuse")
def refuse(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"code": "BUSY"}', status_code=409, mimetype="application/json")


@app.route(route="crash")
def crash(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str({}["missing"]))


@app.route(route="slow-async")
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(30)
    return func.HttpResponse("too late")


@app.route(route="slow-sync")
def slow_sync(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(3)
    return func.HttpResponse("too late")
