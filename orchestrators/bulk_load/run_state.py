"""What the bulk_load orchestration keeps while it runs: the load's state and a level's.

Both are rebuilt by every replay from the orchestration's input and its activities'
answers; nothing here does I/O or reads a clock but `context.current_utc_datetime`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from shared.bulkload import progress
from shared.bulkload.messages import (
    JobSnapshot,
    LevelError,
    LevelResults,
    LoadInput,
    StagedLevel,
    StopReason,
)
from shared.bulkload.progress import JobPace, LevelSummary
from shared.messages import Message

Steps = Generator[Any, Any, Any]


@dataclass
class LoadRun:
    """The orchestration's own state while it runs (rebuilt by every replay)."""

    context: df.DurableOrchestrationContext
    load: LoadInput
    summaries: list[LevelSummary]
    cancel_requested: Any = None  # one task for the whole load, raced by every poll
    stop: StopReason | None = None  # set once: every later level is skipped
    cancel_reason: str | None = None
    # Levels staged ahead, by the step before theirs (combined_steps in the load's input),
    # and the jobs of their parts submitted there (submit_ahead).
    staged_ahead: dict[int, StagedLevel] = field(default_factory=dict)
    submitted_ahead: dict[int, tuple[JobSnapshot, ...]] = field(default_factory=dict)
    # How Salesforce ran the last level whose jobs completed (predicted_polls).
    pace: JobPace | None = None

    @property
    def submit_load_id(self) -> str | None:
        return self.load.load_id if self.load.submit_ahead else None

    def call(self, activity: str, request: Message) -> Any:
        retry = df.RetryOptions(
            first_retry_interval_in_milliseconds=max(
                1, int(self.load.activity_retry_delay * 1000)),
            max_number_of_attempts=self.load.activity_attempts,
        )
        return self.context.call_activity_with_retry(activity, retry, request.to_json())

    def call_once(self, activity: str, request: Message) -> Any:
        """An activity whose failure only costs time: no retries to wait for."""
        return self.context.call_activity(activity, request.to_json())

    def show(self, index: int, phase: str, jobs: Sequence[JobSnapshot] = ()) -> None:
        self.context.set_custom_status(
            progress.custom_status(self.load, index, phase, jobs, self.summaries))

    @property
    def now(self) -> datetime:
        return self.context.current_utc_datetime


@dataclass
class LevelRun:
    """What one level's steps found so far; the summary is made of it, also on failure."""

    index: int
    started: datetime
    staged: StagedLevel | None = None
    jobs: list[JobSnapshot] = field(default_factory=list)
    stalled: tuple[str, ...] = ()
    results: LevelResults | None = None
    error: LevelError | None = None
    preparing: list[Any] = field(default_factory=list)  # child levels' preparation tasks
