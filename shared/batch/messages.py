"""What the batch orchestration and its activities exchange: block references and counts.

Records never appear here: a block is named by its number, a group by its step and number,
and the records stay in Blob Storage (`shared.batch.store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.messages import Message


@dataclass(frozen=True)
class StepTally(Message):
    """Counts of one step: records it accepted, and how many succeeded or failed there.

    `newly_failed` counts the records whose first failure happened here (a record failed
    earlier and failed again by an ALL or ONLY_FAILURES step is failed once)."""

    step: int
    received: int = 0
    successful: int = 0
    failed: int = 0
    newly_failed: int = 0
    failed_by_type: dict[str, int] = field(default_factory=dict)

    def plus(self, other: StepTally) -> StepTally:
        by_type = dict(self.failed_by_type)
        for name, count in other.failed_by_type.items():
            by_type[name] = by_type.get(name, 0) + count
        return StepTally(self.step, self.received + other.received,
                         self.successful + other.successful, self.failed + other.failed,
                         self.newly_failed + other.newly_failed, by_type)


@dataclass(frozen=True)
class SegmentRequest(Message):
    """Run block `block` from step `from_step` until its next aggregator or its end.

    `fold` with `groups`: first apply those aggregator groups' outcomes to the records that
    wait at aggregator step `from_step`, then go on with the next step."""

    job: str
    instance_id: str
    block: int
    from_step: int
    fold: bool = False
    groups: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentResult(Message):
    block: int
    stopped_at: int  # an aggregator step the block waits at, or the step count (done)
    pending: int  # records waiting for that aggregator
    block_failed: int  # records of the block failed so far
    tallies: list[StepTally]


@dataclass(frozen=True)
class GroupSlice(Message):
    """`count` of the records that block `block` has waiting at an aggregator, from `first`."""

    block: int
    first: int
    count: int


@dataclass(frozen=True)
class BlockGroups(Message):
    """Block `block` has all its records waiting at an aggregator in these groups."""

    block: int
    groups: list[int]


@dataclass(frozen=True)
class CommitRequest(Message):
    """Commit group `group` of aggregator step `step`; then go on with each block of
    `continue_blocks` whose groups are all committed (as a fold segment would)."""

    job: str
    instance_id: str
    step: int
    group: int
    slices: list[GroupSlice]
    continue_blocks: list[BlockGroups] = field(default_factory=list)


@dataclass(frozen=True)
class BlockFailures(Message):
    block: int
    newly_failed: int


@dataclass(frozen=True)
class CommitResult(Message):
    step: int
    group: int
    tally: StepTally
    blocks: list[BlockFailures]
    continued: list[SegmentResult] = field(default_factory=list)  # blocks it went on with


@dataclass(frozen=True)
class TurnRequest(Message):
    job: str
    instance_id: str


@dataclass(frozen=True)
class TurnAnswer(Message):
    is_mine: bool
    waiting_for: str | None = None


@dataclass(frozen=True)
class StatusRecord(Message):
    """The instance's row in the instances table: status and the result so far (JSON).
    `status` is EXECUTING, the one status an instance writes before its final row; the
    write is made only over a STAGING or EXECUTABLE row."""

    job: str
    instance_id: str
    status: str
    result_json: str


@dataclass(frozen=True)
class FinishRequest(Message):
    job: str
    instance_id: str
    result_json: str


@dataclass(frozen=True)
class FinishAnswer(Message):
    failed_on_complete: bool
    failure_rows: int
    successor: str | None  # durable instance id of the next ORDERED_SEQUENTIAL instance


@dataclass(frozen=True)
class WakeRequest(Message):
    durable_id: str
