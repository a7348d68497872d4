"""What a batch instance does next: the orchestration's decisions, without any runtime.

The orchestrator keeps one `BlockPlan` and loops: `next_requests(in_flight)` names the
activities to start (never more than `max_concurrency` in flight), and each answer goes
back through `record_segment` / `record_commit`. The plan is plain data (`RunProgress`),
small whatever the record count, and is what `continue_as_new` carries.

How blocks meet aggregators: a block runs step by step until a step with an aggregator
that accepted some of its records; it then waits there, its waiting records queued as a
slice (block, first, count) of that step's queue. A group is dispatched when the queue
holds `size` records, or, when no more records can reach that step, with what is left
(the smaller last group); a streaming aggregator dispatches once, when none can come. The
commit of the group that takes a block's last waiting records is asked to go on with that
block past the aggregator (`CommitRequest.continue_blocks`), which it does once every group
holding the block's records is committed; one of those commits reports the block's
progress (`CommitResult.continued`), so a block costs one activity up to the aggregator
and none after it. A block nobody went on with (a crash between the claim and the work)
goes on in a "fold" segment once all its groups' commits answered.

Priority when capacity frees up: commits, then waiting blocks going on, then new blocks,
so records leave the pipeline before new ones enter it. Once the failure limit is passed
nothing new starts; the activities in flight finish (the overshoot Mule also has).
Every `blocks_per_generation` new blocks the plan stops starting blocks; when nothing is in
flight the orchestrator continues as new with the carried state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from shared.batch.job import BatchJob
from shared.batch.messages import (
    BlockGroups,
    CommitRequest,
    CommitResult,
    GroupSlice,
    SegmentRequest,
    SegmentResult,
    StepTally,
)
from shared.messages import Message

MAX_FAILURE_KINDS = 50
OTHER_KIND = "(other)"


class BatchStatus(enum.Enum):
    """Mule's batch job instance states that this engine reaches."""

    EXECUTABLE = "EXECUTABLE"  # waiting for its turn (ORDERED_SEQUENTIAL)
    EXECUTING = "EXECUTING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED_PROCESS_RECORDS = "FAILED_PROCESS_RECORDS"
    FAILED_INPUT = "FAILED_INPUT"
    FAILED_LOADING = "FAILED_LOADING"
    # Ended without the finish step (shared.batch.liveness): the orchestration failed, or
    # was terminated through the Durable API.
    FAILED = "FAILED"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class WaitingBlock(Message):
    """A block started and not done: running an activity, or waiting at an aggregator."""

    block: int
    size: int
    failed: int
    step: int  # the step it runs from, or the aggregator step it waits at
    running: bool
    pending: int = 0
    unassigned: int = 0
    open_groups: int = 0
    groups: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class AggregatorQueue(Message):
    step: int
    slices: list[GroupSlice] = field(default_factory=list)
    next_group: int = 0


@dataclass(frozen=True)
class RunProgress(Message):
    """Everything an instance's orchestration carries: references and counts, no records."""

    job: str
    instance_id: str
    total_records: int
    block_size: int
    block_count: int
    started_at: str
    next_block: int = 0
    generation: int = 0
    stopping: bool = False
    processed: int = 0  # successful + failed: records that finished the steps or failed
    successful: int = 0
    failed: int = 0
    steps: list[StepTally] = field(default_factory=list)
    blocks: list[WaitingBlock] = field(default_factory=list)
    queues: list[AggregatorQueue] = field(default_factory=list)
    turn_taken: bool = False


@dataclass
class BlockPlan:
    job: BatchJob
    progress: RunProgress
    blocks_per_generation: int
    started_this_generation: int = 0
    blocks: dict[int, WaitingBlock] = field(default_factory=dict)
    queues: dict[int, AggregatorQueue] = field(default_factory=dict)
    tallies: dict[int, StepTally] = field(default_factory=dict)

    @classmethod
    def resume(cls, job: BatchJob, progress: RunProgress, blocks_per_generation: int) -> BlockPlan:
        plan = cls(job, progress, blocks_per_generation)
        plan.blocks = {entry.block: entry for entry in progress.blocks}
        plan.queues = {queue.step: queue for queue in progress.queues}
        plan.tallies = {tally.step: tally for tally in progress.steps}
        for index, step in enumerate(job.steps):
            plan.tallies.setdefault(index, StepTally(index))
            if step.aggregator is not None:
                plan.queues.setdefault(index, AggregatorQueue(index))
        return plan

    # -- decisions ----------------------------------------------------------------------

    def next_requests(self, in_flight: int) -> list[SegmentRequest | CommitRequest]:
        capacity = self.job.max_concurrency - in_flight
        requests: list[SegmentRequest | CommitRequest] = []
        if self.progress.stopping:
            return requests
        for step in sorted(self.queues):
            while capacity > 0:
                commit = self._next_group(step)
                if commit is None:
                    break
                requests.append(commit)
                capacity -= 1
        for entry in sorted(self.blocks.values(), key=lambda e: e.block):
            if capacity <= 0:
                break
            if (not entry.running and entry.unassigned == 0 and entry.open_groups == 0
                    and entry.pending > 0):
                self.blocks[entry.block] = replace(entry, running=True)
                requests.append(self._segment(entry.block, entry.step, fold=True,
                                              groups=entry.groups))
                capacity -= 1
        while (capacity > 0 and self.progress.next_block < self.progress.block_count
               and self.started_this_generation < self.blocks_per_generation):
            block = self.progress.next_block
            size = min(self.progress.block_size,
                       self.progress.total_records - block * self.progress.block_size)
            self.blocks[block] = WaitingBlock(block, size, 0, 0, running=True)
            self.progress = replace(self.progress, next_block=block + 1)
            self.started_this_generation += 1
            requests.append(self._segment(block, 0))
            capacity -= 1
        return requests

    def _segment(self, block: int, step: int, fold: bool = False,
                 groups: list[int] | None = None) -> SegmentRequest:
        return SegmentRequest(self.job.name, self.progress.instance_id, block, step, fold,
                              list(groups or []))

    def _next_group(self, step: int) -> CommitRequest | None:
        queue = self.queues[step]
        waiting = sum(part.count for part in queue.slices)
        if waiting == 0:
            return None
        aggregator = self.job.steps[step].aggregator
        assert aggregator is not None
        size = aggregator.size
        if size is not None and waiting >= size:
            take = size
        elif self._more_can_reach(step):
            return None
        else:
            take = waiting
        slices: list[GroupSlice] = []
        rest = list(queue.slices)
        while take > 0:
            head = rest.pop(0)
            used = min(head.count, take)
            slices.append(GroupSlice(head.block, head.first, used))
            if used < head.count:
                rest.insert(0, GroupSlice(head.block, head.first + used, head.count - used))
            take -= used
        group = queue.next_group
        self.queues[step] = AggregatorQueue(step, rest, group + 1)
        complete: list[BlockGroups] = []
        for part in slices:
            entry = replace(self.blocks[part.block],
                            unassigned=self.blocks[part.block].unassigned - part.count,
                            open_groups=self.blocks[part.block].open_groups + 1,
                            groups=[*self.blocks[part.block].groups, group])
            self.blocks[part.block] = entry
            if entry.unassigned == 0:
                complete.append(BlockGroups(entry.block, list(entry.groups)))
        return CommitRequest(self.job.name, self.progress.instance_id, step, group, slices,
                             complete)

    def _more_can_reach(self, step: int) -> bool:
        if self.progress.next_block < self.progress.block_count:
            return True
        # A block running from its first step may reach any aggregator; a block going on
        # from (or waiting at) an aggregator reaches only the later ones.
        return any((entry.running and entry.pending == 0) or entry.step < step
                   for entry in self.blocks.values())

    # -- answers ------------------------------------------------------------------------

    def record_segment(self, result: SegmentResult) -> None:
        entry = self.blocks[result.block]
        self._add_tallies(result.tallies)
        if result.stopped_at >= len(self.job.steps):
            del self.blocks[result.block]
            # Its failed records were counted processed when they failed (_add_tallies).
            succeeded = entry.size - result.block_failed
            self.progress = replace(
                self.progress, processed=self.progress.processed + succeeded,
                successful=self.progress.successful + succeeded)
        else:
            self.blocks[result.block] = replace(
                entry, failed=result.block_failed, step=result.stopped_at, running=False,
                pending=result.pending, unassigned=result.pending, open_groups=0, groups=[])
            queue = self.queues[result.stopped_at]
            self.queues[result.stopped_at] = replace(
                queue, slices=[*queue.slices, GroupSlice(result.block, 0, result.pending)])
        self._check_failure_limit()

    def record_commit(self, result: CommitResult) -> None:
        self._add_tallies([result.tally])
        for part in result.blocks:
            entry = self.blocks.get(part.block)
            # A block another commit went on with has left this step (or finished).
            if entry is not None and entry.step == result.step:
                self.blocks[part.block] = replace(entry, open_groups=entry.open_groups - 1)
        for answer in result.continued:
            entry = self.blocks.get(answer.block)
            # Two commits may both report a block they went on with: the first one counts.
            if entry is not None and entry.step == result.step and not entry.running:
                self.record_segment(answer)
        self._check_failure_limit()

    def _add_tallies(self, tallies: list[StepTally]) -> None:
        for tally in tallies:
            total = self.tallies[tally.step].plus(tally)
            if len(total.failed_by_type) > MAX_FAILURE_KINDS:
                kinds = sorted(total.failed_by_type.items(), key=lambda kv: -kv[1])
                kept = dict(kinds[:MAX_FAILURE_KINDS - 1])
                kept[OTHER_KIND] = sum(count for _, count in kinds[MAX_FAILURE_KINDS - 1:])
                total = replace(total, failed_by_type=kept)
            self.tallies[tally.step] = total
            # A failed record is processed (Mule: processed = successful + failed), even
            # when the instance stops before the rest of its block finishes the steps.
            self.progress = replace(self.progress,
                                    processed=self.progress.processed + tally.newly_failed,
                                    failed=self.progress.failed + tally.newly_failed)

    def _check_failure_limit(self) -> None:
        if not self.progress.stopping and self.job.failure_limit_reached(self.progress.failed):
            self.progress = replace(self.progress, stopping=True)

    # -- where the instance stands -------------------------------------------------------

    @property
    def finished(self) -> bool:
        running = any(entry.running for entry in self.blocks.values())
        if self.progress.stopping:
            return not running
        return self.progress.next_block >= self.progress.block_count and not self.blocks

    @property
    def status(self) -> BatchStatus:
        if self.progress.stopping:
            return BatchStatus.FAILED_PROCESS_RECORDS
        return BatchStatus.SUCCESSFUL if self.finished else BatchStatus.EXECUTING

    def carried(self) -> RunProgress:
        """The state to continue as new with (or to report): counts and waiting blocks."""
        return replace(
            self.progress, steps=[self.tallies[index] for index in sorted(self.tallies)],
            blocks=[self.blocks[block] for block in sorted(self.blocks)],
            queues=[self.queues[step] for step in sorted(self.queues)])

    def next_generation(self) -> RunProgress:
        assert not any(entry.running for entry in self.blocks.values()), "not quiescent"
        return replace(self.carried(), generation=self.progress.generation + 1)


@dataclass(frozen=True)
class RunInput(Message):
    """The orchestration's input: the carried progress and the settings it runs with."""

    progress: RunProgress
    activity_attempts: int
    activity_retry_delay: float
    blocks_per_generation: int
    turn_check_interval: float
