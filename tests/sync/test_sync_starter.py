"""The starter under the lock, with the durable client answering as the host would.

The Durable client is the one piece replaced here: the races it reports (a start refused
because another starter won) are hard to time on a real host. State is real (Azurite).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from shared.crash_points import FAULT_SETTING
from shared.log_fields import event_fields
from shared.sync.lock import TickAction
from shared.sync.messages import RunInput
from shared.sync.starter import RUN_START_AFTER_START_NEW, run_tick
from tests.sync.sources import asset_job


class DurableClientAnswering:
    """No instance yet, and `start_new` answers with `start_error` (or starts)."""

    def __init__(self, start_error: Exception | None = None) -> None:
        self.start_error = start_error
        self.started: list[str] = []

    async def get_status(self, instance_id: str, show_input: bool = False) -> Any:
        return None

    async def start_new(self, name: str, instance_id: str, client_input: Any) -> str:
        if self.start_error is not None:
            raise self.start_error
        self.started.append(instance_id)
        return instance_id


def tick(job, state, client) -> Any:
    return asyncio.run(run_tick(job, client, state, lambda run_id, started: RunInput(
        job.name, run_id, started, page_attempts=1, page_retry_delay=0, pages_per_generation=1)))


def test_a_start_refused_because_the_instance_exists_is_a_counted_skip(state, sqlite_assets):
    job = asset_job(sqlite_assets)
    refused = DurableClientAnswering(
        Exception("An Orchestration instance with the status Running already exists.")
    )

    decision = tick(job, state, refused)

    assert decision.action is TickAction.SKIP_BUSY
    assert "refused" in decision.reason and "tick skipped" in decision.reason
    assert state.ticks.read(job.name)["SkippedBusy"] == 1
    # The lease was given back: the next tick starts the run.
    working = DurableClientAnswering()
    assert tick(job, state, working).action is TickAction.START
    assert working.started == [job.instance_id]


def test_a_start_that_fails_otherwise_fails_the_tick_and_frees_the_lock(state, sqlite_assets):
    job = asset_job(sqlite_assets)
    unreachable = DurableClientAnswering(ConnectionError("Cannot connect to host 127.0.0.1"))

    with pytest.raises(ConnectionError):
        tick(job, state, unreachable)

    assert state.ticks.read(job.name).get("SkippedBusy", 0) == 0
    working = DurableClientAnswering()
    assert tick(job, state, working).action is TickAction.START


def test_a_started_run_whose_tick_is_not_counted_is_still_a_start(
    state, sqlite_assets, monkeypatch, caplog
):
    """The timer's path: the tick that started the run does not fail because its counting
    did; the run keeps its lease and the next tick sees it running."""
    job = asset_job(sqlite_assets)
    working = DurableClientAnswering()
    monkeypatch.setenv(FAULT_SETTING, RUN_START_AFTER_START_NEW)

    with caplog.at_level(logging.WARNING, logger="shared.sync.starter"):
        decision = tick(job, state, working)

    assert decision.action is TickAction.START and decision.run_id
    assert working.started == [job.instance_id]
    assert state.ticks.read(job.name) == {}
    lease = state.lease.read(job.name)
    assert lease is not None and lease.run_id == decision.run_id
    [warning] = [record for record in caplog.records
                 if event_fields(record).get("event") == "sync tick not counted"]
    assert warning.levelno == logging.WARNING
    fields = event_fields(warning)
    assert (fields["job"], fields["run_id"], fields["error_type"]) == (
        job.name, decision.run_id, "InjectedFault")
    assert "started" in str(fields["not_written"])
