"""What the drain orchestration and its activities exchange: references, counts, outcomes.

Event payloads and source rows never travel here; an `EventRef` names a waiting event and
the ETag it had when taken, so that settling it touches it only if it is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from shared.batch.plan import RunInput
from shared.events.validation import Operation
from shared.messages import Message

# The drain's step sequence (DrainRun.pipeline): 1 took, staged, settled and finished with
# an activity each and passed the batch's references through history; 2 takes and stages
# in one activity, settles and then finishes or takes the next batch in one activity, and
# keeps the references beside the batch's instance (shared/events/drain_steps.py).
PIPELINE = 2


@dataclass(frozen=True)
class EventKey(Message):
    """A queue row's keys: where the next batch starts reading (after this one)."""

    partition: str
    row: str


@dataclass(frozen=True)
class EventRef(Message):
    object: str
    id: str
    operation: Operation
    version: int | None
    attempts: int
    etag: str


@dataclass(frozen=True)
class EventOutcome(Message):
    """What processing did with one event: done, or failed with a code and a message."""

    done: bool
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class DrainRun(Message):
    """The drain's input, one per generation (continue_as_new carries it on)."""

    run_id: str
    started_at: datetime
    batch_size: int
    batches_per_generation: int
    max_attempts: int
    retry_delay: float
    generation: int = 1
    cursor: EventKey | None = None
    # The step sequence this run follows: absent (1) in the input of a drain started by a
    # version before PIPELINE, whose history must replay the same steps; a new generation
    # starts a new history, so it moves on to PIPELINE.
    pipeline: int = 1
    batches: int = 0
    processed: int = 0
    dead_lettered: int = 0
    superseded: int = 0

    def after_batch(self, cursor: EventKey | None, settled: SettleBatchResult,
                    stale: int) -> DrainRun:
        return replace(
            self, cursor=cursor, batches=self.batches + 1,
            processed=self.processed + settled.removed,
            dead_lettered=self.dead_lettered + settled.dead_lettered,
            superseded=self.superseded + settled.superseded + stale,
        )

    def batch_instance_id(self, ahead: int = 1) -> str:
        """The instance of the batch job that processes this run's next batch (`ahead` 2:
        the one after): derived, never random, so that a replay names the same instance."""
        return f"drain-{self.run_id}-{self.batches + ahead}"

    def next_generation(self) -> DrainRun:
        return replace(self, generation=self.generation + 1, pipeline=PIPELINE)


@dataclass(frozen=True)
class TakeBatchRequest(Message):
    limit: int
    after: EventKey | None
    now: datetime


@dataclass(frozen=True)
class TakeBatchResult(Message):
    """Due events (fresh, or failed and past their retry time), and where to go on from.

    `stale` counts events dropped unprocessed: older than the version last processed for
    their record. An empty batch with `stale == 0` means nothing is due.
    """

    events: list[EventRef] = field(default_factory=list)
    cursor: EventKey | None = None
    stale: int = 0


@dataclass(frozen=True)
class StageBatchRequest(Message):
    """Stage `events` as the records of instance `instance_id` of the job `asset-events`."""

    instance_id: str
    events: list[EventRef]


@dataclass(frozen=True)
class StageBatchResult(Message):
    run: RunInput  # the input of the instance's batch_job sub-orchestration


class BatchEnd(Enum):
    """How a batch's instance of `asset-events` ended."""

    COMPLETED = "completed"  # every record processed: a record without a failure is done
    STOPPED = "stopped"  # failure limit passed: a record without a failure may not have run
    FAILED = "failed"  # the instance failed: no record's outcome is known


@dataclass(frozen=True)
class ProcessedBatch(Message):
    instance_id: str
    end: BatchEnd
    failed_records: int


@dataclass(frozen=True)
class SettleBatchRequest(Message):
    events: list[EventRef]
    batch: ProcessedBatch
    max_attempts: int
    retry_delay: float
    now: datetime


@dataclass(frozen=True)
class SettleBatchResult(Message):
    removed: int = 0  # done, and removed from the queue
    retrying: int = 0  # failed, tried again after a delay
    dead_lettered: int = 0  # failed on every attempt, moved to the dead-letter table
    superseded: int = 0  # a newer event for the record replaced it meanwhile: it stays


class FinishReason(Enum):
    IDLE = "idle"
    EVENTS_DUE = "events_due"
    POSTED_MEANWHILE = "posted_meanwhile"


@dataclass(frozen=True)
class FinishRequest(Message):
    run_id: str
    now: datetime


@dataclass(frozen=True)
class FinishResult(Message):
    reason: FinishReason

    @property
    def finished(self) -> bool:
        return self.reason is FinishReason.IDLE


@dataclass(frozen=True)
class TakeStageRequest(Message):
    """Take up to `limit` due events after `after` and stage them as instance
    `instance_id` of the job `asset-events`."""

    instance_id: str
    limit: int
    after: EventKey | None
    now: datetime


@dataclass(frozen=True)
class StagedBatch(Message):
    """A batch taken and staged: counts and where to go on from, never the references.

    `run` is None when nothing was taken (then nothing was staged); `full` says the take
    found `limit` due events, so more may be due.
    """

    instance_id: str
    events: int
    stale: int
    full: bool
    cursor: EventKey | None = None
    run: RunInput | None = None

    @property
    def nothing_due(self) -> bool:
        return self.events == 0 and self.stale == 0


@dataclass(frozen=True)
class SettleAdvanceRequest(Message):
    """Settle the batch `batch` names; then, when `finish_if_quiet`, finish the drain if
    nothing is due and nothing was posted since; unless finished, take and stage `next`."""

    run_id: str
    batch: ProcessedBatch
    max_attempts: int
    retry_delay: float
    now: datetime
    finish_if_quiet: bool
    next: TakeStageRequest | None = None


@dataclass(frozen=True)
class SettleAdvanceResult(Message):
    settled: SettleBatchResult
    finish: FinishReason | None = None  # None: finishing was not tried
    next: StagedBatch | None = None

    @property
    def finished(self) -> bool:
        return self.finish is FinishReason.IDLE
