"""Named points where the app can be made to crash, for the crash tests.

`reached("bulk_load_claimed")` does nothing unless the process was started with
`CRASH_AT=bulk_load_claimed`; then it ends the process at once (`os._exit`: no cleanup, no
`finally`, no flushed buffers), the way a host killed between two writes would stop. A
test starts the local host with `CRASH_AT` set, drives it to the point, restarts it without
the variable and checks what survived. Points are named after what was just written.
"""

from __future__ import annotations

import os
import sys

CRASH_AT = "CRASH_AT"
CRASH_EXIT_CODE = 97


def reached(name: str) -> None:
    """End the process here if `CRASH_AT` names this point."""
    if os.environ.get(CRASH_AT) == name:
        sys.stderr.write(f"crash point {name!r} reached: exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
