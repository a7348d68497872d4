"""Running one block through its steps, and one aggregator group through its commit.

Both are idempotent, as activities run at least once:

- `run_segment` persists the block's record state after *each* step (ETag-guarded), and a
  redelivered request resumes at the first step not yet persisted; a step already
  persisted never runs again for that block. Its result is read back from the persisted
  counts, so a redelivery answers exactly what the first delivery would have.
- `commit_group` writes the group's outcome blob (create-only) after the commit call; a
  redelivery finding it answers from it without calling the commit again.

A commit also goes on with the blocks it was asked to continue (those whose records all
wait in groups already dispatched), so a block usually takes one activity to its
aggregator and none after it: once every group holding its records is committed, the
block's failures are folded in and its later steps run, persisted per step as in a
segment. The commit that sees all those groups committed goes on (two may see it at
once: a create-only "continued" blob picks one); a block nobody went on with (a crash
after the claim) is left to a fold segment, which resumes from the persisted state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.batch.job import BatchJob, BatchRecord, BatchStep, StepFailure
from shared.batch.messages import (
    BlockFailures,
    BlockGroups,
    CommitRequest,
    CommitResult,
    SegmentRequest,
    SegmentResult,
    StepTally,
)
from shared.batch.store import BlobStore, InstanceFolder, read_blobs, side_by_side
from shared.crash_points import crash_point
from shared.storage.tables import ConcurrentWrite

log = logging.getLogger(__name__)

# Crash points (shared/crash_points.py): a step's record state is persisted, the
# activity's result is not; a group's commit was applied, its outcome is not persisted.
STEP_PERSISTED = "batch.block.after_step_persisted"
GROUP_COMMITTED = "batch.group.after_commit"


@dataclass
class BlockState:
    """A block's records after its last persisted step (the JSON of its state blob)."""

    instance_id: str
    first_index: int
    next_step: int
    payloads: list[dict[str, Any]]
    failures: list[list[list[str]]]  # per record: [step name, exception type, message]
    pending: list[int] | None = None  # records waiting at aggregator step `next_step`
    tallies: dict[str, dict[str, Any]] = field(default_factory=dict)
    etag: str | None = None

    @classmethod
    def from_blob(cls, data: bytes, etag: str) -> BlockState:
        raw = json.loads(data)
        return cls(raw["instance_id"], raw["first_index"], raw["next_step"], raw["payloads"],
                   raw["failures"], raw.get("pending"), raw.get("tallies", {}), etag)

    def to_blob(self) -> bytes:
        return json.dumps({
            "instance_id": self.instance_id, "first_index": self.first_index,
            "next_step": self.next_step,
            "payloads": self.payloads, "failures": self.failures, "pending": self.pending,
            "tallies": self.tallies}, separators=(",", ":")).encode()

    def record(self, position: int) -> BatchRecord:
        return BatchRecord(self.instance_id, self.first_index + position, self.payloads[position],
                           tuple(StepFailure(*failure) for failure in self.failures[position]))

    @property
    def failed_count(self) -> int:
        return sum(1 for failures in self.failures if failures)


def load_block_state(store: BlobStore, folder: InstanceFolder, block: int) -> BlockState:
    stored = store.read(folder.block_state(block))
    if stored is None:
        raise LookupError(f"block {block} of {folder.prefix} was never staged")
    return BlockState.from_blob(*stored)


def _persist(store: BlobStore, folder: InstanceFolder, block: int, state: BlockState) -> None:
    state.etag = store.write(folder.block_state(block), state.to_blob(), state.etag)


GroupOutcomes = dict[int, dict[str, Any]]  # group number -> its outcome blob's JSON


def run_segment(job: BatchJob, store: BlobStore, request: SegmentRequest,
                state: BlockState | None = None,
                outcomes: GroupOutcomes | None = None) -> SegmentResult:
    """Run the request's steps not yet persisted; `state` and `outcomes` are what the caller
    read already (a commit going on with a block)."""
    folder = InstanceFolder(job.name, request.instance_id)
    while True:
        if state is None:
            state = load_block_state(store, folder, request.block)
        try:
            _advance(job, store, folder, request, state, outcomes or {})
        except ConcurrentWrite:
            # Another delivery of this request persisted a step first: go on from its state
            # (its persisted steps are not run again).
            log.warning("block %s of %s: a concurrent delivery persisted first",
                        request.block, folder.prefix)
            state = None
            continue
        return _segment_result(job, request, state)


def _segment_done(job: BatchJob, request: SegmentRequest, state: BlockState) -> bool:
    """Has the persisted state reached where this segment stops (an aggregator or the end)?"""
    if state.next_step >= len(job.steps):
        return True
    if state.pending is None:
        return False
    return state.next_step > request.from_step or not request.fold


def _advance(job: BatchJob, store: BlobStore, folder: InstanceFolder,
             request: SegmentRequest, state: BlockState, outcomes: GroupOutcomes) -> None:
    """Run the segment's steps not yet persisted; what a step function did is persisted
    before the next step function runs, and everything at the end.

    Folding the groups' outcomes in and an aggregator's collecting pass (a step without a
    function) call no step function and are repeated exactly from what is stored, so they
    are persisted with the next write rather than in one of their own."""
    ran_function = unsaved = False
    while not _segment_done(job, request, state):
        if state.pending is not None:  # the fold: the groups' outcomes, then the next step
            _fold_groups(store, folder, request, state, outcomes)
            state.next_step += 1
            state.pending = None
            unsaved = True
            continue
        step = job.steps[state.next_step]
        if ran_function and step.run is not None:
            _persist(store, folder, request.block, state)
            crash_point(STEP_PERSISTED)
            ran_function = unsaved = False
        tally, pending = _run_step(step, state)
        state.tallies[str(state.next_step)] = tally.to_json()
        if step.aggregator is not None and pending:
            state.pending = pending
        else:
            state.next_step += 1
        ran_function = ran_function or step.run is not None
        unsaved = True
    if unsaved:
        _persist(store, folder, request.block, state)
        crash_point(STEP_PERSISTED)


def _run_step(step: BatchStep, state: BlockState) -> tuple[StepTally, list[int]]:
    """Run `step` over the block's records in order; (its counts, records for its aggregator).

    A record the step takes up counts as received, and then as successful, failed or (at an
    aggregator) pending. An accept expression that raises fails the record at this step, so
    it counts as received too: a step's received is its successful plus failed plus pending,
    as in Mule's step statistics."""
    received = successful = failed = newly_failed = 0
    by_type: dict[str, int] = {}
    pending: list[int] = []
    for position in range(len(state.payloads)):
        record = state.record(position)
        try:
            if not step.accepts(record):
                continue
        except Exception as error:
            failure: Exception | None = error
        else:
            failure = None
        received += 1
        if failure is None and step.run is not None:
            try:
                new_payload = step.run(record)
                if new_payload is not None:
                    state.payloads[position] = storable_payload(new_payload)
            except Exception as error:  # the record fails at this step; the block goes on
                failure = error
        if failure is not None:
            noted = StepFailure.of(step.name, failure)
            failed += 1
            newly_failed += 0 if record.failed else 1
            by_type[noted.exception_type] = by_type.get(noted.exception_type, 0) + 1
            state.failures[position].append([step.name, noted.exception_type, noted.message])
        elif step.aggregator is not None:
            pending.append(position)
        else:
            successful += 1
    return StepTally(-1, received, successful, failed, newly_failed, by_type), pending


def storable_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` as a dict the block's state blob can hold; TypeError (failing the record
    at its step) when JSON cannot hold a value: the block's state must still be written,
    or the whole block fails and its step functions are called again."""
    stored = dict(payload)
    try:
        json.dumps(stored, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError(f"the step returned a payload that JSON cannot hold: {error}") from None
    return stored


def _segment_result(job: BatchJob, request: SegmentRequest, state: BlockState) -> SegmentResult:
    first = request.from_step + (1 if request.fold else 0)
    last = state.next_step if state.pending is not None else state.next_step - 1
    tallies = [StepTally.from_json({**state.tallies[str(step)], "step": step})
               for step in range(first, last + 1) if str(step) in state.tallies]
    return SegmentResult(request.block, state.next_step, len(state.pending or []),
                         state.failed_count, tallies)


def _fold_groups(store: BlobStore, folder: InstanceFolder, request: SegmentRequest,
                 state: BlockState, outcomes: GroupOutcomes) -> None:
    for group in request.groups:
        outcome = outcomes.get(group) or _group_outcome(store, folder, request.from_step, group)
        if outcome is None:
            raise LookupError(f"group {group} of step {request.from_step} was never committed")
        for part in outcome["slices"]:
            if part["block"] != request.block:
                continue
            for position, failure in zip(part["positions"], part["outcomes"], strict=True):
                if failure is not None:
                    state.failures[position].append(failure)


def _group_outcome(store: BlobStore, folder: InstanceFolder, step: int,
                   group: int) -> dict[str, Any] | None:
    stored = store.read(folder.group(step, group))
    return None if stored is None else json.loads(stored[0])


def commit_group(job: BatchJob, store: BlobStore, request: CommitRequest) -> CommitResult:
    """Commit the group (once), then go on with the blocks of `continue_blocks` it can."""
    folder = InstanceFolder(job.name, request.instance_id)
    # The group's outcome (present if a delivery committed it) and the waiting blocks'
    # states (needed if not) are read side by side.
    blocks = [part.block for part in request.slices]
    found = read_blobs(store, [folder.group(request.step, request.group),
                               *(folder.block_state(block) for block in blocks)])
    states: dict[int, BlockState] = {}
    if found[0] is not None:
        outcome = json.loads(found[0][0])
    else:
        states = {block: _waiting_state(folder, block, request.step, stored)
                  for block, stored in zip(blocks, found[1:], strict=True)}
        outcome = _commit_new_group(job, store, folder, request, states)
    result = CommitResult.from_json(outcome["result"])

    def go_on(blocks: BlockGroups) -> SegmentResult | None:
        return _continue_block(job, store, folder, request, blocks, outcome,
                               states.get(blocks.block))

    if request.step == len(job.steps) - 1:
        # After the last step only the fold is left (no step function): blocks side by side.
        answers = side_by_side(go_on, request.continue_blocks)
    else:  # block by block: step functions run in one block at a time per activity
        answers = [go_on(blocks) for blocks in request.continue_blocks]
    return replace(result, continued=[answer for answer in answers if answer is not None])


def _continue_block(job: BatchJob, store: BlobStore, folder: InstanceFolder,
                    request: CommitRequest, blocks: BlockGroups, outcome: dict[str, Any],
                    state: BlockState | None) -> SegmentResult | None:
    """Go on with the block past the aggregator when all its groups are committed; None
    when one is not (its commit goes on with it) or another commit claimed it."""
    others = [group for group in blocks.groups if group != request.group]
    found = read_blobs(store, [folder.group(request.step, group) for group in others])
    if any(stored is None for stored in found):
        return None
    outcomes: GroupOutcomes = {request.group: outcome}
    outcomes.update((group, json.loads(stored[0]))  # type: ignore[index]
                    for group, stored in zip(others, found, strict=True))
    if len(blocks.groups) > 1:
        try:
            store.write(folder.continued(request.step, blocks.block), b"", etag=None)
        except ConcurrentWrite:
            return None
    fold = SegmentRequest(request.job, request.instance_id, blocks.block, request.step,
                          fold=True, groups=list(blocks.groups))
    return run_segment(job, store, fold, state, outcomes)


def _commit_new_group(job: BatchJob, store: BlobStore, folder: InstanceFolder,
                      request: CommitRequest, states: dict[int, BlockState]) -> dict[str, Any]:
    """Call the aggregator's commit over the waiting records of `states` and store the
    group's outcome; returns it (the outcome blob's JSON)."""
    name = folder.group(request.step, request.group)
    step = job.steps[request.step]
    assert step.aggregator is not None, f"step {step.name} has no aggregator"
    parts: list[tuple[int, list[int], list[BatchRecord]]] = []
    for part in request.slices:
        state = states[part.block]
        positions = (state.pending or [])[part.first:part.first + part.count]
        parts.append((part.block, positions, [state.record(p) for p in positions]))
    records = [record for _, _, group_records in parts for record in group_records]
    outcomes = _commit_outcomes(step, records)
    crash_point(GROUP_COMMITTED)
    successful = failed = newly_failed = 0
    by_type: dict[str, int] = {}
    slices_json: list[dict[str, Any]] = []
    blocks: list[BlockFailures] = []
    cursor = 0
    for block, positions, group_records in parts:
        block_outcomes: list[list[str] | None] = []
        block_new = 0
        for record in group_records:
            outcome = outcomes[cursor]
            cursor += 1
            if outcome is None:
                successful += 1
                block_outcomes.append(None)
                continue
            failure = StepFailure.of(step.name, outcome)
            failed += 1
            block_new += 0 if record.failed else 1
            by_type[failure.exception_type] = by_type.get(failure.exception_type, 0) + 1
            block_outcomes.append([step.name, failure.exception_type, failure.message])
        newly_failed += block_new
        blocks.append(BlockFailures(block, block_new))
        slices_json.append({"block": block, "positions": positions, "outcomes": block_outcomes})
    result = CommitResult(request.step, request.group,
                          StepTally(request.step, 0, successful, failed, newly_failed, by_type),
                          blocks)
    group_outcome = {"slices": slices_json, "result": result.to_json()}
    try:
        store.write(name, json.dumps(group_outcome).encode(), etag=None)
    except ConcurrentWrite:  # a concurrent delivery committed first: its outcome stands
        stored = store.read(name)
        assert stored is not None  # that delivery's write is why this one was refused
        earlier: dict[str, Any] = json.loads(stored[0])
        return earlier
    return group_outcome


def _waiting_state(folder: InstanceFolder, block: int, step: int,
                   stored: tuple[bytes, str] | None) -> BlockState:
    if stored is None:
        raise LookupError(f"block {block} of {folder.prefix} has no state")
    state = BlockState.from_blob(*stored)
    if state.next_step != step or state.pending is None:
        raise LookupError(f"block {block} of {folder.prefix} does not wait at step {step}")
    return state


def _commit_outcomes(step: BatchStep, records: Sequence[BatchRecord]) -> list[BaseException | None]:
    assert step.aggregator is not None
    try:
        outcomes = list(step.aggregator.commit(records))
    except Exception as error:  # the group failed as a whole: each of its records did
        log.warning("step %s: the aggregator's commit failed for a group of %d: %s",
                    step.name, len(records), type(error).__name__)
        return [error] * len(records)
    if len(outcomes) != len(records):
        mismatch = ValueError(f"the aggregator returned {len(outcomes)} outcomes for "
                              f"{len(records)} records")
        return [mismatch] * len(records)
    return [outcome if isinstance(outcome, BaseException) or outcome is None
            else ValueError(str(outcome)) for outcome in outcomes]
