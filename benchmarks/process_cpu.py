"""CPU seconds a process (and its children) used so far, read from Linux /proc.

Benchmarks print them beside wall time: on a shared machine the load of other processes
moves wall time much more than the CPU a run spends.
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU seconds (user + system) a process and (unless not `children`) its live
    children (the host's activity worker processes, PostgreSQL's backends) used so far
    (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + (sum(cpu_seconds(child) for child in _children(pid)) if children else 0.0)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return children
