"""Record-heavy parsing without the cyclic garbage collector's passes over the process.

Parsing and checking a 40,000-record body keeps some 300,000 new objects alive until it
ends: the collector runs a pass every 700 of them, and every so often one over every
object of the process (a Functions host holds hundreds of thousands), so the passes can
cost as much as the parse. Parsed records form no reference cycles: reference counting
frees them, and a pass during the parse finds nothing to collect. Collection is paused
while any thread is in `collection_paused()`, and resumed when the last one leaves.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_inside = 0
_resume = False  # whether collection was on when the first thread came in


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    global _inside, _resume
    with _lock:
        if _inside == 0:
            _resume = gc.isenabled()
            gc.disable()
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _resume:
                gc.enable()
