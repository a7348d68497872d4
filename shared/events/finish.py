"""The drain's last step: finish only if nothing is due and nothing was posted since.

    1. read the signal (its ETag)
    2. look at the queue: an event due (fresh, or past its retry time) -> go on draining
    3. declare idle with that ETag: refused when a poster marked the signal after step 1
       -> go on draining (the poster stored its events before marking)

An event stored before step 2 is seen there; one stored after it was followed by a mark
that either lands before step 3 (refused: the drain goes on) or after it (the poster sees
`idle` and starts the next drain). Events waiting only for a later retry do not keep the
drain alive: the next post or the safety timer starts a drain when they fall due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.crash_points import crash_point
from shared.events.drain_state import DrainStateTable
from shared.events.messages import FinishReason
from shared.events.queue import EventQueue

# Crash point (shared/crash_points.py): the signal is marked idle, the drain not completed.
IDLE_MARKED = "events.finish.after_idle_mark"


def _no_pause() -> None:
    return None


# Pause points for the race tests (tests/events/host_app): the moment between the drain's
# last empty look and its idle mark, and between that mark and its completion.
before_idle_mark: Callable[[], None] = _no_pause
after_idle_mark: Callable[[], None] = _no_pause


def finish_if_quiet(queue: EventQueue, state: DrainStateTable, now: datetime,
                    run_id: str | None = None) -> FinishReason:
    """Finish the drain `run_id` if quiet (the idle mark names it: wake.py tells it from a
    drain started after the mark)."""
    signal = state.read_signal()
    if queue.has_due_events(now):
        return FinishReason.EVENTS_DUE
    before_idle_mark()
    if not state.declare_idle(signal.etag, now, run_id):
        return FinishReason.POSTED_MEANWHILE
    crash_point(IDLE_MARKED)
    after_idle_mark()
    return FinishReason.IDLE
