"""Named points at which a test can make the host process die, as a crash would there.

`DEVHOST_CRASH_AT` names one or more points (comma-separated). The first time the process
reaches one, it writes `devhost: crash point <name> reached` to stderr and ends at once
with `os._exit` (no cleanup, no lease release): storage holds what a kill -9 at that
moment leaves. Unset, a crash point costs one environment lookup.
"""

from __future__ import annotations

import os
import sys

CRASH_SETTING = "DEVHOST_CRASH_AT"
CRASH_EXIT_CODE = 86

# start_instance: the instance row (Pending, new execution id) is written, its start
# message is not.
START_BEFORE_MESSAGE = "engine.start_instance.before_start_message"

CRASH_POINTS = (START_BEFORE_MESSAGE,)


def crash_point(name: str) -> None:
    armed = os.environ.get(CRASH_SETTING)
    if not armed or name not in {part.strip() for part in armed.split(",")}:
        return
    sys.stderr.write(f"devhost: crash point {name} reached\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)


def check_crash_setting() -> None:
    """Refuse a misspelt point at start-up rather than never crashing."""
    armed = {part.strip() for part in os.environ.get(CRASH_SETTING, "").split(",")} - {""}
    unknown = sorted(armed - set(CRASH_POINTS))
    if unknown:
        raise ValueError(
            f"{CRASH_SETTING} names unknown crash point(s) {', '.join(unknown)}; known: "
            f"{', '.join(CRASH_POINTS)}"
        )
