"""What the sync_run orchestration and its activities pass each other, and its input.

Names, ids, times, counts and cursor positions as text: never a row, never a secret.
`RunInput` is also what `continue_as_new` hands to the next generation and what a tick
reads back (`run_id`, `started_at`) to know when a run started.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from shared.bulkload.messages import JobSnapshot
from shared.messages import Message
from shared.sync.positions import StoredBound, StoredPosition


class RunOutcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BacklogStop(enum.Enum):
    """Where a backlog stage stopped reading."""

    BOUND = "bound"  # every row up to the run's bound is staged
    # The jobs of one stage run side by side, so a record's later change waits for them:
    # stopped before one with a round's worth staged (more rows than the job's backlog
    # threshold, or as many records as a stage tracks), another round follows; with fewer,
    # the rest of the run goes by pages.
    NEXT_ROUND = "next_round"
    RECORD_AGAIN = "record_again"


@dataclass(frozen=True)
class StepFailure(Message):
    """Why a step failed: `code`, the text for the runs table, and whether a later try of
    the same page may succeed (the sink was unavailable) or not."""

    code: str
    error: str
    retryable: bool = False


@dataclass(frozen=True)
class RunTotals(Message):
    """What a run has checkpointed so far: pages with rows, rows, delivered, dead-lettered.

    Kept with the watermark (written in the same ETag-guarded checkpoint), so a page whose
    checkpoint was written but whose result was lost is still counted, and counted once.
    """

    pages: int = 0
    rows: int = 0
    delivered: int = 0
    dead_lettered: int = 0

    def add(self, rows: int, delivered: int, dead_lettered: int) -> RunTotals:
        """The totals after one more page the sink accepted."""
        return RunTotals(
            self.pages + (1 if rows else 0), self.rows + rows,
            self.delivered + delivered, self.dead_lettered + dead_lettered,
        )

    def plus(self, other: RunTotals) -> RunTotals:
        """These totals and those of another part of the run (a key partition)."""
        return RunTotals(self.pages + other.pages, self.rows + other.rows,
                         self.delivered + other.delivered,
                         self.dead_lettered + other.dead_lettered)


@dataclass(frozen=True)
class PartitionProgress(Message):
    """What one key partition of a run checkpointed so far, and whether it reached the
    run's end."""

    totals: RunTotals = field(default_factory=RunTotals)
    done: bool = False


@dataclass(frozen=True)
class RunInput(Message):
    """The run orchestration's input: one run of one job, across its generations."""

    job: str
    run_id: str
    started_at: datetime
    page_attempts: int
    page_retry_delay: float
    pages_per_generation: int
    activity_budget: float = 30.0
    pages_per_activity: int = 1000
    backlog_poll_interval: float = 5.0
    upper_bound: StoredBound | None = None  # fixed by the begin step
    totals: RunTotals = field(default_factory=RunTotals)
    generation: int = 0
    # False in the input of a run started by an earlier version: its history has no such
    # steps, and it replays without them.
    waits_for_recorded_jobs: bool = False
    # Key partitions the run's pages are synced in (1: one activity at a time, as a run
    # started by an earlier version); once they began, the progress of each and the
    # run's totals before them (a backlog's).
    partitions: int = 1
    partition_progress: tuple[PartitionProgress, ...] = ()
    totals_before_partitions: RunTotals = field(default_factory=RunTotals)
    # False in the input of a run started by an earlier version: it joins its partitions
    # and ends in two activities, as its history has them; True: in one.
    ends_with_join: bool = False


@dataclass(frozen=True)
class BeginRunRequest(Message):
    job: str
    run_id: str
    started_at: datetime
    # The key partitions the run was started with (1: asked by an earlier version, whose
    # runs are synced in one piece).
    partitions: int = 1


@dataclass(frozen=True)
class EarlierJobsRunning(Message):
    """How many Bulk API jobs recorded by earlier attempts or runs are still running."""

    running: int = 0
    failure: StepFailure | None = None


@dataclass(frozen=True)
class RunBegun(Message):
    """`backlog`: more changed rows than the job's backlog threshold wait (counted up to
    just above it), so the run loads them with Bulk API 2.0 jobs instead of pages.
    `earlier_jobs`: how many Bulk API jobs of earlier runs still run (None: not known)."""

    upper_bound: StoredBound | None = None
    start: StoredPosition | None = None
    backlog: bool = False
    failure: StepFailure | None = None
    earlier_jobs: EarlierJobsRunning | None = None


@dataclass(frozen=True)
class PagesRequest(Message):
    """Sync pages until `budget_seconds` or `max_pages` is spent (or the bound is reached)."""

    job: str
    run_id: str
    upper_bound: StoredBound
    budget_seconds: float = 30.0
    max_pages: int = 1000
    # One key partition's pages (of `partitions`), from its own position; None: the run's.
    partition: int | None = None
    partitions: int = 1


@dataclass(frozen=True)
class JoinPartitionsRequest(Message):
    """Every key partition reached the run's end: move the watermark past them."""

    job: str
    run_id: str
    partitions: int


@dataclass(frozen=True)
class EndPartitionedRunRequest(Message):
    """Every key partition reached the run's end: move the watermark past them, then end
    the run as succeeded (one activity)."""

    job: str
    run_id: str
    started_at: datetime
    partitions: int


@dataclass(frozen=True)
class PagesResult(Message):
    """The run's checkpointed `totals` and position after this activity; `pages` and
    `rows` it synced itself; `done` when the bound was reached."""

    pages: int = 0
    rows: int = 0
    totals: RunTotals = field(default_factory=RunTotals)
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


@dataclass(frozen=True)
class BacklogRequest(Message):
    job: str
    run_id: str
    upper_bound: StoredBound


@dataclass(frozen=True)
class BacklogStaged(Message):
    """The changed rows up to the bound: the upsert jobs their parts were submitted to
    (`jobs`; or, staged by an earlier version, `parts`: CSV blobs still to submit), how
    many rows were read, how many the mapping rejected, the position of the last one and
    why reading stopped there."""

    parts: tuple[str, ...] = ()
    rows: int = 0
    dead_lettered: int = 0
    position: StoredPosition | None = None
    failure: StepFailure | None = None
    jobs: tuple[JobSnapshot, ...] = ()
    keys: tuple[str, ...] = ()  # blobs: external id -> record key and cursor of each row
    stopped: BacklogStop = BacklogStop.BOUND


@dataclass(frozen=True)
class BacklogPartRequest(Message):
    job: str
    run_id: str
    blob: str


@dataclass(frozen=True)
class BacklogJobsRequest(Message):
    job: str
    run_id: str
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class BacklogJobs(Message):
    jobs: tuple[JobSnapshot, ...] = ()
    failure: StepFailure | None = None


@dataclass(frozen=True)
class BacklogFinishRequest(Message):
    job: str
    run_id: str
    staged: BacklogStaged
    jobs: tuple[JobSnapshot, ...]
