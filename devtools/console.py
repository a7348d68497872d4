"""What `make run` prints: one timestamped line per event, in UTC like the local host's log.

The runner relays its children's output through `relay_lines`, so every line on the
terminal carries a timestamp whether or not the child wrote one.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import IO

_TIMESTAMPED = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\] ")
_print_lock = threading.Lock()


def timestamp(moment: float | None = None) -> str:
    """`[2024-05-01T12:00:00.123Z]`, the format of the local host's log lines."""
    moment = time.time() if moment is None else moment
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    return f"[{whole}.{int(moment % 1 * 1000):03d}Z]"


def say(text: str, stream: IO[str] | None = None) -> None:
    """Print `text` with a timestamp on each of its lines."""
    with _print_lock:
        out = stream or sys.stdout
        for line in text.splitlines() or [""]:
            out.write(stamped(line) + "\n")
        out.flush()


def stamped(line: str) -> str:
    return line if _TIMESTAMPED.match(line) else f"{timestamp()} {line}"


def relay_lines(source: IO[bytes], stream: IO[str] | None = None) -> threading.Thread:
    """Copy a child's output line by line, timestamping lines that have none; returns the
    daemon thread doing it (it ends when the child closes its output)."""

    def copy() -> None:
        for raw in iter(source.readline, b""):
            say(raw.decode("utf-8", errors="replace").rstrip("\r\n"), stream)
        source.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread
