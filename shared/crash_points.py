"""Named points at which a crash test can make the app's process die, as kill -9 would there.

A test hook, not a setting: `APP_CRASH_AT` names one or more points (comma-separated), each
optionally with `@N` to die the Nth time the process reaches it (`sync.page.after_watermark@3`:
the third page), else the first. There it writes `app: crash point <name> reached` to stderr
and ends at once with `os._exit` (no cleanup, no lease release, no retry), so storage and
Salesforce hold exactly what a crash at that moment leaves. On the local host the app runs
inside the host process, so the whole host dies. Unset, a crash point costs one environment
lookup.

Name points `<capability>.<step>.<moment>`, e.g. `sync.page.after_watermark`, and declare
each as a constant beside the code that reaches it so the crash tests can import it
(`tests/chaos/points.py` lists every point with the scenario that reaches it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

CRASH_SETTING = "APP_CRASH_AT"
CRASH_EXIT_CODE = 87

_reached: Counter[str] = Counter()
_counting = threading.Lock()


def armed_points(setting: str) -> dict[str, int]:
    """`name` or `name@N` items of a comma-separated setting -> {name: N} (N >= 1)."""
    armed: dict[str, int] = {}
    for part in setting.split(","):
        name, _, nth = part.strip().partition("@")
        if name:
            armed[name] = int(nth) if nth.strip().isdigit() and int(nth) > 0 else 1
    return armed


def crash_point(name: str) -> None:
    """Die here if the test armed `name` (and this is the armed time); else do nothing."""
    setting = os.environ.get(CRASH_SETTING)
    if not setting:
        return
    nth = armed_points(setting).get(name)
    if nth is None:
        return
    with _counting:
        _reached[name] += 1
        if _reached[name] < nth:
            return
    sys.stderr.write(f"app: crash point {name} reached\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)
