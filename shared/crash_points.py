"""Named points at which a crash test can make the app's process die, as kill -9 would there.

A test hook, not a setting: `APP_CRASH_AT` names one or more points (comma-separated). The
first time the process reaches one of them it writes `app: crash point <name> reached` to
stderr and ends at once with `os._exit` (no cleanup, no lease release, no retry), so storage
and Salesforce hold exactly what a crash at that moment leaves. On the local host the app
runs inside the host process, so the whole host dies. Unset, a crash point costs one
environment lookup.

Name points `<capability>.<step>.<moment>`, e.g. `sync.page.after_watermark`, and declare
each as a constant beside the code that reaches it so the crash tests can import it.
"""

from __future__ import annotations

import os
import sys

CRASH_SETTING = "APP_CRASH_AT"
CRASH_EXIT_CODE = 87


def crash_point(name: str) -> None:
    """Die here if the test armed `name`; otherwise do nothing."""
    armed = os.environ.get(CRASH_SETTING)
    if not armed or name not in {part.strip() for part in armed.split(",")}:
        return
    sys.stderr.write(f"app: crash point {name} reached\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)
