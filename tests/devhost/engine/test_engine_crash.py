"""SIGKILL the engine's process mid-orchestration, start another, and check what re-ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.devhost.engine.engine_harness import new_hub

REPO = Path(__file__).resolve().parents[3]


def worker(connection_string: str, hub: str, journal: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.devhost.engine.crash_worker", connection_string, hub,
         "crash-1", str(journal), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def wait_for_line(journal: Path, line: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and line in journal.read_text().splitlines():
            return
        if process.poll() is not None:
            raise AssertionError(f"worker exited early: {process.communicate()[1][-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{line!r} never appeared in the journal")


def test_sigkill_mid_activity_then_restart_completes_without_rerunning_done_work(
    connection_string: str, tmp_path: Path,
) -> None:
    hub = new_hub()
    journal = tmp_path / "journal.txt"
    first = worker(connection_string, hub, journal, "--start")
    try:
        wait_for_line(journal, "start slow", first, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The durable timer (1 s) falls due while no host runs: it must fire at once later.
    time.sleep(1.5)
    restarted_at = time.monotonic()
    second = worker(connection_string, hub, journal)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": "Completed", "output": ["a", "b", "c"]}
    lines = journal.read_text().splitlines()
    # Completed before the kill: not run again. In flight: run again. Not yet due: once.
    assert lines.count("start a") == 1 and lines.count("end a") == 1
    assert lines.count("start slow") == 2 and lines.count("end slow") == 1
    assert lines.count("start c") == 1 and lines.count("end c") == 1
    # The killed host's lease is broken at once, not left to expire (15 s): the new host
    # says so before it takes the lease. (Timing it would flake on a loaded machine.)
    print(f"restarted host finished in {time.monotonic() - restarted_at:.1f} s")
    breaking = err.find("breaking the task hub lease of")
    assert breaking != -1, err[-3000:]
    assert err.find("took the task hub lease", breaking) != -1, err[-3000:]
