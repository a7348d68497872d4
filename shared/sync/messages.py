"""What the sync_run orchestration and its activities pass each other, and its input.

Names, ids, times, counts and cursor positions as text: never a row, never a secret.
`RunInput` is also what `continue_as_new` hands to the next generation and what a tick
reads back (`run_id`, `started_at`) to know when a run started.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from shared.messages import Message
from shared.sync.positions import StoredBound, StoredPosition


class RunOutcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class StepFailure(Message):
    """Why a step failed: `code`, the text for the runs table, and whether a later try of
    the same page may succeed (the sink was unavailable) or not."""

    code: str
    error: str
    retryable: bool = False


@dataclass(frozen=True)
class RunTotals(Message):
    pages: int = 0
    rows: int = 0
    delivered: int = 0
    dead_lettered: int = 0

    def add(self, page: PageResult) -> RunTotals:
        """The totals after a page the sink accepted."""
        return RunTotals(
            self.pages + (1 if page.rows else 0), self.rows + page.rows,
            self.delivered + page.delivered, self.dead_lettered + page.dead_lettered,
        )


@dataclass(frozen=True)
class RunInput(Message):
    """The run orchestration's input: one run of one job, across its generations."""

    job: str
    run_id: str
    started_at: datetime
    page_attempts: int
    page_retry_delay: float
    pages_per_generation: int
    upper_bound: StoredBound | None = None  # fixed by the begin step
    totals: RunTotals = field(default_factory=RunTotals)
    generation: int = 0


@dataclass(frozen=True)
class BeginRunRequest(Message):
    job: str
    run_id: str
    started_at: datetime


@dataclass(frozen=True)
class RunBegun(Message):
    upper_bound: StoredBound | None = None
    start: StoredPosition | None = None
    failure: StepFailure | None = None


@dataclass(frozen=True)
class PageRequest(Message):
    job: str
    run_id: str
    upper_bound: StoredBound


@dataclass(frozen=True)
class PageResult(Message):
    rows: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    position: StoredPosition | None = None
    done: bool = False
    failure: StepFailure | None = None


@dataclass(frozen=True)
class EndRunRequest(Message):
    job: str
    run_id: str
    started_at: datetime
    outcome: RunOutcome
    totals: RunTotals
    error: str | None = None
