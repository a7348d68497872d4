"""Named points at which a crash test can make the app's process die, as kill -9 would there.

A test hook, not a setting: `APP_CRASH_AT` names one or more points (comma-separated), each
optionally with `@N` to die the Nth time the process reaches it (`sync.page.after_watermark@3`:
the third page), else the first. There it writes `app: crash point <name> reached` to stderr
and ends at once with `os._exit` (no cleanup, no lease release, no retry), so storage and
Salesforce hold exactly what a crash at that moment leaves. On the local host the app runs
inside the host process, so the whole host dies; with `FUNCTIONS_WORKER_PROCESS_COUNT` > 1
a point reached in an activity kills only that activity's worker process, and the activity
fails (devhost/README.md, "Worker processes"). Unset, a crash point costs one environment
lookup.

A fault point is the milder sibling: `APP_FAIL_AT` (same syntax) makes `fault_point(name)`
raise `InjectedFault`, the error an unreachable Azure Storage gives, each time the point is
reached from the Nth on, so a test sees how the code answers a write that fails at that
moment while the process lives on.

Name points `<capability>.<step>.<moment>`, e.g. `sync.page.after_watermark`, and declare
each as a constant beside the code that reaches it so the tests can import it
(`tests/chaos/points.py` lists every point with the scenario or test that reaches it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

from azure.core.exceptions import ServiceRequestError

CRASH_SETTING = "APP_CRASH_AT"
CRASH_EXIT_CODE = 87
FAULT_SETTING = "APP_FAIL_AT"

_reached: Counter[str] = Counter()
_faulted: Counter[str] = Counter()
_counting = threading.Lock()


class InjectedFault(ServiceRequestError):
    """Raised by an armed fault point: to the app, Azure Storage could not be reached."""


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
    if not _armed_now(CRASH_SETTING, name, _reached):
        return
    sys.stderr.write(f"app: crash point {name} reached\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)


def fault_point(name: str) -> None:
    """Raise `InjectedFault` here if the test armed `name` in `APP_FAIL_AT` (and this is
    the armed time or a later one); else do nothing."""
    if _armed_now(FAULT_SETTING, name, _faulted):
        raise InjectedFault(f"fault point {name} reached ({FAULT_SETTING})")


def _armed_now(setting_name: str, name: str, reached: Counter[str]) -> bool:
    setting = os.environ.get(setting_name)
    if not setting:
        return False
    nth = armed_points(setting).get(name)
    if nth is None:
        return False
    with _counting:
        reached[name] += 1
        return reached[name] >= nth
