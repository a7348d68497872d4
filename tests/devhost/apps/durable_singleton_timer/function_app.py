"""Sample app: a timer starts a fixed-id singleton; starts over a busy one are refused."""

import json
import os
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

SINGLETON_ID = "nightly-sync"


def write_journal(event: str, detail: str = "") -> None:
    entry = {"event": event, "detail": detail, "at": datetime.now(UTC).isoformat()}
    with open(os.environ["SINGLETON_JOURNAL"], "a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry) + "\n")


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
@app.durable_client_input(client_name="client")
async def start_singleton(timer: func.TimerRequest, client: df.DurableOrchestrationClient):
    try:
        await client.start_new("sync_run", SINGLETON_ID, None)
    except Exception as error:  # refused: the singleton is busy
        write_journal("refused", str(error))
        return
    write_journal("started")


@app.orchestration_trigger(context_name="context")
def sync_run(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=3))
    return "synced"
