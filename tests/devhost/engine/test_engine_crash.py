"""SIGKILL the engine's process mid-orchestration, or stop it at a named crash point, start
another, and check what re-ran and what a reader saw in between."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devhost.engine import events as ev
from devhost.engine.crash_points import (
    COMMIT_BEFORE_HISTORY,
    COMMIT_BEFORE_ROW,
    CRASH_EXIT_CODE,
    CRASH_SETTING,
)
from tests.devhost.engine.engine_harness import TERMINAL, new_hub, task_hub_store

REPO = Path(__file__).resolve().parents[3]


def worker(connection_string: str, hub: str, journal: Path, *extra: str,
           crash_at: str | None = None) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != CRASH_SETTING}
    if crash_at is not None:
        env[CRASH_SETTING] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "tests.devhost.engine.crash_worker", connection_string, hub,
         "crash-1", str(journal), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONWARNINGS": "ignore"},
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


def stored_instance(connection_string: str, hub: str) -> tuple[str, list[dict]]:
    """The instance row's status and the committed history, as a client reads them."""
    async def read() -> tuple[str, list[dict]]:
        async with task_hub_store(connection_string, hub) as store:
            row = await store.read_instance("crash-1")
            _, history = await store.read_history("crash-1")
            assert row is not None
            return row["RuntimeStatus"], history
    return asyncio.run(read())


def crash_the_ending_episode(connection_string: str, hub: str, journal: Path, point: str
                             ) -> None:
    crashing = worker(connection_string, hub, journal, "--start", "--flow", "in_sequence",
                      crash_at=point)
    _, err = crashing.communicate(timeout=90)
    assert crashing.returncode == CRASH_EXIT_CODE, err[-3000:]
    assert f"crash point {point.partition('@')[0]} reached" in err


def restart_to_the_end(connection_string: str, hub: str, journal: Path) -> str:
    """Start the engine again; its answer once the instance ended (stderr for its log)."""
    restarted = worker(connection_string, hub, journal)
    out, err = restarted.communicate(timeout=90)
    assert restarted.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {
        "status": "Completed", "output": ["a", "b", "c"]}
    lines = journal.read_text().splitlines()
    assert [lines.count(f"end {name}") for name in "abc"] == [1, 1, 1]
    return err


def test_an_ending_episode_stopped_before_its_history_shows_no_end_in_its_row(
    connection_string: str, tmp_path: Path,
) -> None:
    """The history goes first: stopped before it, the row of the instance does not say it
    ended (a reader seeing Completed must find the whole history). Episode 4 ends it."""
    hub = new_hub()
    journal = tmp_path / "journal.txt"
    crash_the_ending_episode(connection_string, hub, journal, f"{COMMIT_BEFORE_HISTORY}@4")

    status, history = stored_instance(connection_string, hub)

    assert status not in TERMINAL
    assert [e["EventType"] for e in history].count(ev.EXECUTION_COMPLETED) == 0
    restart_to_the_end(connection_string, hub, journal)
    status, history = stored_instance(connection_string, hub)
    assert status == "Completed"
    assert [e["EventType"] for e in history].count(ev.TASK_COMPLETED) == 3


def test_an_ending_episode_stopped_after_its_history_is_ended_from_it_at_the_restart(
    connection_string: str, tmp_path: Path,
) -> None:
    """Stopped between the history and the row: the history is whole while the row does not
    say it ended yet (Running, or Pending when the rows of the episodes before were still
    to come); nothing is left to run the episode again, so the restarted engine writes
    the row from the committed history (its sentinel), output included."""
    hub = new_hub()
    journal = tmp_path / "journal.txt"
    crash_the_ending_episode(connection_string, hub, journal, COMMIT_BEFORE_ROW)

    status, history = stored_instance(connection_string, hub)

    assert status not in TERMINAL
    types = [e["EventType"] for e in history]
    assert types.count(ev.TASK_COMPLETED) == 3
    assert ev.EXECUTION_COMPLETED in types[-2:]
    err = restart_to_the_end(connection_string, hub, journal)
    assert f"ended while its row says {status}" in err, err[-3000:]
    assert stored_instance(connection_string, hub)[0] == "Completed"
