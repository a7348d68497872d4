"""Named points at which a test can make the host process die, as a crash would there.

`DEVHOST_CRASH_AT` names one or more points (comma-separated), each optionally with `@N` to
die the Nth time the process reaches it, else the first. There it writes `devhost: crash
point <name> reached` to stderr and ends at once with `os._exit` (no cleanup, no lease
release): storage holds what a kill -9 at that moment leaves. Unset, a crash point costs
one environment lookup.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

CRASH_SETTING = "DEVHOST_CRASH_AT"
CRASH_EXIT_CODE = 86

# start_instance: the instance row (Pending, new execution id) is written, its start
# message is not.
START_BEFORE_MESSAGE = "engine.start_instance.before_start_message"
# start_instance: the row and the start message are written, the caller (the app's
# start_new) has no answer: the host dies before the caller writes what follows a start.
START_AFTER_MESSAGE = "engine.start_instance.after_start_message"
# An episode's commit: nothing of it is written, neither its history (with the work items
# and timers it schedules and the deletion of the results and timers it applied) nor its
# instance row.
COMMIT_BEFORE_HISTORY = "engine.commit.before_history"
# The commit of an episode that ends the instance or applies a command (terminate, suspend,
# resume): the history is written, the instance row is not.
COMMIT_BEFORE_ROW = "engine.commit.before_row"
# An episode's commit: the history is written, the messages from outside the instance
# that it applied (start, raised events, commands, sub-orchestration results) are not
# deleted.
COMMIT_BEFORE_CONSUME = "engine.commit.before_consume"
# An activity ran (whatever it changed elsewhere is changed), its result is not stored.
ACTIVITY_BEFORE_RESULT = "engine.activity.before_result"
# continue_as_new: the next generation's start message is sent, the ending one's history
# is not committed.
CONTINUE_AS_NEW_BEFORE_COMMIT = "engine.continue_as_new.before_commit"

CRASH_POINTS = (START_BEFORE_MESSAGE, START_AFTER_MESSAGE, COMMIT_BEFORE_HISTORY,
                COMMIT_BEFORE_ROW, COMMIT_BEFORE_CONSUME, ACTIVITY_BEFORE_RESULT,
                CONTINUE_AS_NEW_BEFORE_COMMIT)

_reached: Counter[str] = Counter()
_counting = threading.Lock()


def _armed() -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in os.environ.get(CRASH_SETTING, "").split(","):
        name, _, nth = part.strip().partition("@")
        if name:
            armed[name] = int(nth) if nth.strip().isdigit() and int(nth) > 0 else 1
    return armed


def crash_point(name: str) -> None:
    if not os.environ.get(CRASH_SETTING):
        return
    nth = _armed().get(name)
    if nth is None:
        return
    with _counting:
        _reached[name] += 1
        if _reached[name] < nth:
            return
    sys.stderr.write(f"devhost: crash point {name} reached\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)


def check_crash_setting() -> None:
    """Refuse a misspelt point at start-up rather than never crashing."""
    unknown = sorted(set(_armed()) - set(CRASH_POINTS))
    if unknown:
        raise ValueError(
            f"{CRASH_SETTING} names unknown crash point(s) {', '.join(unknown)}; known: "
            f"{', '.join(CRASH_POINTS)}"
        )
