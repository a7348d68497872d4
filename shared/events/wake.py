"""Waking the drain: after events were stored, by the safety timer, or on demand.

The drain is the orchestration instance `event-drain`: its fixed id is the lock. A start
over a running instance is refused by the backend (`overridableExistingInstanceStates =
NonRunningStates`) and read as "busy", never as an error.

    1. mark the signal running (drain_state.py); the state before says what to do:
    2. it was running and the instance is busy: that drain will look at the queue again
       before it may finish (the mark changed the ETag its finish is conditional on);
    3. it was idle (or the instance died): start a drain. A refusal right after `idle`
       means the last drain has declared idle but not yet completed (try again for a
       few seconds; if it still holds the id, leave the start to the safety timer), or a
       later poster started the next drain first (the idle mark names the drain that made
       it: another run holds the id, so it runs and sees these events).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from shared.durable import BUSY_STATES, read_status
from shared.events.drain_state import DrainState, DrainStateTable, Signal
from shared.events.messages import PIPELINE, DrainRun
from shared.events.settings import EventQueueSettings
from shared.log_fields import log_event
from shared.sync.starter import start_was_refused

log = logging.getLogger(__name__)

DRAIN_INSTANCE_ID = "event-drain"
DRAIN_ORCHESTRATOR = "event_drain"
# How long a wake-up waits for a drain that declared idle to complete (normally one
# orchestrator episode, well under a second) before the safety timer takes over.
FINISHING_DRAIN_WAIT = 5.0


def _no_pause() -> None:
    return None


# A pause point for the race tests (tests/events/host_app): the moment between a poster's
# mark of the signal and its start of a drain.
after_mark: Callable[[], None] = _no_pause


class Wake(Enum):
    STARTED = "started"
    RUNNING = "running"  # a drain runs and will see the events
    DEFERRED = "deferred"  # the last drain was still completing: the safety timer starts one


def new_drain_run(settings: EventQueueSettings, now: datetime) -> DrainRun:
    return DrainRun(
        run_id=uuid.uuid4().hex[:12], started_at=now, batch_size=settings.batch_size,
        batches_per_generation=settings.batches_per_generation,
        max_attempts=settings.max_attempts, retry_delay=settings.retry_delay,
        pipeline=PIPELINE,
    )


async def wake_drain(client: Any, state: DrainStateTable,
                     drain_run: Callable[[], DrainRun], now: datetime,
                     finishing_wait: float = FINISHING_DRAIN_WAIT) -> Wake:
    signal = await asyncio.to_thread(state.mark_running, now)
    await asyncio.to_thread(after_mark)
    before = signal.state
    if before is DrainState.RUNNING and await drain_is_busy(client):
        return Wake.RUNNING
    deadline = time.monotonic() + finishing_wait
    pause = 0.05
    while True:
        run = drain_run()
        try:
            await client.start_new(DRAIN_ORCHESTRATOR, DRAIN_INSTANCE_ID, run.to_json())
        except Exception as error:  # the SDK raises a bare Exception carrying the answer
            if not start_was_refused(error):
                raise
        else:
            log_event(log, "event drain started", run_id=run.run_id, batch_size=run.batch_size)
            return Wake.STARTED
        if before is DrainState.RUNNING or time.monotonic() > deadline:
            break
        if await _started_after_idle(client, signal):
            return Wake.RUNNING
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
    if before is DrainState.RUNNING:
        return Wake.RUNNING  # started by someone else just now
    log.warning("event queue: the last drain still holds %s after %.0f s; the safety "
                "timer starts the next", DRAIN_INSTANCE_ID, finishing_wait)
    return Wake.DEFERRED


async def _started_after_idle(client: Any, before: Signal) -> bool:
    """Whether the drain holding the id is not the one that declared idle before this
    poster's mark (or no drain ever ran). Every start follows a mark, and this poster's
    mark was the first after the idle one, so such a drain started after it and takes
    this poster's events."""
    if before.etag is not None and before.idle_run_id is None:
        return False  # idle declared by a version that did not name its drain
    status = await read_status(client, DRAIN_INSTANCE_ID)
    runtime = getattr(status, "runtime_status", None) if status else None
    if str(getattr(runtime, "value", runtime)) not in BUSY_STATES:
        return False
    try:
        holder = DrainRun.from_json(getattr(status, "input_", None)).run_id
    except Exception:  # an input this version cannot read: wait, as before
        return False
    return holder != before.idle_run_id


async def drain_is_busy(client: Any) -> bool:
    status = await read_status(client, DRAIN_INSTANCE_ID)
    runtime = getattr(status, "runtime_status", None) if status else None
    return str(getattr(runtime, "value", runtime)) in BUSY_STATES
