"""Timer triggers as a user sees them: schedules, run on startup, overlap, past due."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from devhost.testing import RunningHost
from tests.devhost.conftest import sample_app


def read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # A line still being written by the host has no newline yet: it is read next time.
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)


def timers_app(tmp_path: Path) -> Path:
    """The timers sample in a folder of its own: its host id (the folder name) and so its
    schedule status and locks in the shared Azurite are this test's alone."""
    app = tmp_path / f"timers{uuid.uuid4().hex[:12]}"
    shutil.copytree(sample_app("timers"), app, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def timer_env(journal: Path, storage: str) -> dict[str, str]:
    return {
        "TIMER_JOURNAL": str(journal),
        "TICK_SCHEDULE": "*/2 * * * * *",
        "AzureWebJobsStorage": storage,
    }


def test_timers_follow_their_schedules_without_overlap(
    start_devhost: Callable[..., RunningHost], tmp_path: Path, azurite
):
    journal = tmp_path / "journal.jsonl"
    host = start_devhost(timers_app(tmp_path), env=timer_env(journal, azurite.connection_string))
    wait_for(lambda: sum(e["function"] == "tick" for e in read_journal(journal)) >= 3, 15)
    wait_for(lambda: sum(e["event"] == "end" for e in read_journal(journal)) >= 3, 15)
    host.stop()
    entries = read_journal(journal)

    # %TICK_SCHEDULE% = every 2 seconds, on even seconds. Each tick is matched to the even
    # second it ran for; a loaded machine may run it up to 1.5 s late (or a hair early).
    ticks = [datetime.fromisoformat(e["at"]).timestamp() for e in entries
             if e["function"] == "tick"]
    assert len(ticks) >= 3
    occurrences = [2 * math.floor((tick + 0.25) / 2) for tick in ticks]
    lateness = [round(tick - occurrence, 3) for tick, occurrence in zip(ticks, occurrences,
                                                                         strict=True)]
    assert all(late < 1.5 for late in lateness), lateness
    # Once per occurrence, none missed: every second (or every 4 s) would not pass.
    gaps = [later - earlier for earlier, later in itertools.pairwise(occurrences)]
    assert gaps == [2] * len(gaps), (gaps, lateness)

    # A 1.5 s function on a 1 s schedule never runs twice at once.
    slow = [e for e in entries if e["function"] == "slow_tick"]
    assert [e["event"] for e in slow].count("end") >= 3
    assert [e["event"] for e in slow][: 2 * (len(slow) // 2)] == ["start", "end"] * (len(slow) // 2)

    # run_on_startup ran the yearly report once, at start-up; no timer was past due.
    assert [e["event"] for e in entries if e["function"] == "new_year_report"] == ["run"]
    assert not any(e["past_due"] for e in entries)


def test_an_occurrence_missed_while_the_host_was_down_runs_at_startup_as_past_due(
    start_devhost: Callable[..., RunningHost], tmp_path: Path, azurite
):
    journal = tmp_path / "journal.jsonl"
    env = timer_env(journal, azurite.connection_string)
    app = timers_app(tmp_path)
    status_suffix = f"/{app.name.lower()}/every_five_minutes/status"  # the host id is the folder
    first = start_devhost(app, env=env)
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client("azure-webjobs-hosts")
    wait_for(
        lambda: container.exists()
        and any(b.name.endswith(status_suffix) for b in container.list_blobs()),
        15,
    )
    first.stop()
    status_blob = next(
        b.name for b in container.list_blobs() if b.name.endswith(status_suffix)
    )
    status = json.loads(container.download_blob(status_blob).readall())
    # Pretend the host was down across a scheduled occurrence.
    missed = datetime.now(UTC) - timedelta(minutes=3)
    status["Next"] = missed.isoformat().replace("+00:00", "Z")
    container.upload_blob(status_blob, json.dumps(status), overwrite=True)

    start_devhost(app, env=env)
    wait_for(
        lambda: any(e["function"] == "every_five_minutes" and e["past_due"]
                    for e in read_journal(journal)),
        15,
    )

    # Only the past-due run counts: a real five-minute mark may also fall in this test.
    runs = [e for e in read_journal(journal) if e["function"] == "every_five_minutes"]
    assert [run["past_due"] for run in runs].count(True) == 1, runs


def test_two_hosts_on_one_storage_account_never_run_a_timer_at_the_same_time(
    start_devhost: Callable[..., RunningHost], tmp_path: Path, azurite
):
    journal = tmp_path / "journal.jsonl"
    env = timer_env(journal, azurite.connection_string)
    app = timers_app(tmp_path)
    start_devhost(app, env=env)
    start_devhost(app, env=env)
    wait_for(lambda: sum(e["event"] == "end" for e in read_journal(journal)) >= 4, 20)

    slow = [e["event"] for e in read_journal(journal) if e["function"] == "slow_tick"]
    pairs = len(slow) // 2
    assert pairs >= 4
    assert slow[: 2 * pairs] == ["start", "end"] * pairs
