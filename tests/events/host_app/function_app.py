"""The event queue, wired as function_app.py wires it (with the batch engine its drain runs
each batch through), for the local-host tests.

`EVENTS_TEST_PAUSE_AT` (before_idle_mark | after_idle_mark | after_mark) and
`EVENTS_TEST_PAUSE_DIR` let a race test hold the drain's last step, or a poster between
its mark and its start of a drain, once: when the file `armed` exists in that folder, the
drain (the poster) removes it, writes `paused` and waits until `release` appears.
"""

import os
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from activities import batch as batch_activities
from activities import events as event_activities
from orchestrators import batch, events
from shared.config import app_settings
from shared.events import finish, wake

settings = app_settings()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(batch.blueprint)
app.register_functions(batch_activities.blueprint)
app.register_functions(events.blueprint)
app.register_functions(event_activities.blueprint)


def _pause_once() -> None:
    folder = Path(os.environ["EVENTS_TEST_PAUSE_DIR"])
    try:
        (folder / "armed").unlink()
    except FileNotFoundError:
        return
    (folder / "paused").write_text("paused")
    deadline = time.monotonic() + 120
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


if os.environ.get("EVENTS_TEST_PAUSE_AT"):
    pause_at = os.environ["EVENTS_TEST_PAUSE_AT"]
    setattr(wake if pause_at == "after_mark" else finish, pause_at, _pause_once)
