"""Sample app: timer triggers that write what they observe to a journal file."""

import json
import os
import time
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp()


def write_journal(function: str, event: str, timer: func.TimerRequest) -> None:
    entry = {
        "function": function,
        "event": event,
        "at": datetime.now(UTC).isoformat(),
        "past_due": timer.past_due,
    }
    with open(os.environ["TIMER_JOURNAL"], "a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry) + "\n")


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    write_journal("tick", "run", timer)


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def slow_tick(timer: func.TimerRequest) -> None:
    write_journal("slow_tick", "start", timer)
    time.sleep(1.5)
    write_journal("slow_tick", "end", timer)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
async def new_year_report(timer: func.TimerRequest) -> None:
    write_journal("new_year_report", "run", timer)


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
def every_five_minutes(timer: func.TimerRequest) -> None:
    write_journal("every_five_minutes", "run", timer)
