"""Named crash points: a test hook that kills the process at a chosen step.

`reached(name)` does nothing unless the environment variable `CRASH_AT` names this point
(`CRASH_AT=sync.page.checkpointed`, or `...:N` for its N-th passage in this process); then
the process exits at once with `os._exit`, without cleanup, as a power cut or `kill -9`
would stop it. Crash tests set `CRASH_AT` for one host process, restart the host without
it and check the invariants (nothing lost, nothing duplicated, no lock held, counts
exact). Never set it in a deployment.

Points in the app: `sync.tick.lease_taken` (after a tick took the lease, before the run's
orchestration is started), `sync.page.checkpointed` (after a page's watermark was written,
before the activity answered).
"""

from __future__ import annotations

import os
import sys
import threading

CRASH_AT = "CRASH_AT"
EXIT_CODE = 86

_passages: dict[str, int] = {}
_lock = threading.Lock()


def reached(name: str) -> None:
    """Exit the process now if `CRASH_AT` names this point (and this passage)."""
    wanted = os.environ.get(CRASH_AT)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    with _lock:
        _passages[name] = _passages.get(name, 0) + 1
        passage = _passages[name]
    if passage == (int(count) if count else 1):
        print(f"crash point {name} reached (passage {passage}): exiting", file=sys.stderr,
              flush=True)
        os._exit(EXIT_CODE)
