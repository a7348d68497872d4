"""The drain orchestrator's steps, replayed through the SDK against a queue of counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.events import (
    EVENT_DRAIN_FINISH,
    EVENT_DRAIN_SETTLE_AND_ADVANCE,
    EVENT_DRAIN_SETTLE_BATCH,
    EVENT_DRAIN_STAGE_BATCH,
    EVENT_DRAIN_TAKE_AND_STAGE,
    EVENT_DRAIN_TAKE_BATCH,
)
from shared.batch.plan import BatchStatus, RunInput, RunProgress
from shared.events.messages import (
    PIPELINE,
    DrainRun,
    EventKey,
    EventRef,
    FinishReason,
    FinishResult,
    SettleAdvanceRequest,
    SettleAdvanceResult,
    SettleBatchRequest,
    SettleBatchResult,
    StageBatchRequest,
    StageBatchResult,
    StagedBatch,
    TakeBatchRequest,
    TakeBatchResult,
    TakeStageRequest,
)
from shared.events.validation import Operation
from shared.events.wake import DRAIN_INSTANCE_ID, DRAIN_ORCHESTRATOR
from tests.replay_driver import SUB_ORCHESTRATOR, Replay, orchestrator_function, replay

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def orchestrator():
    with orchestrator_function("orchestrators.events", "event_drain") as function:
        yield function


def replay_drain(orchestrator, run_input: dict[str, Any], respond, now: datetime) -> Replay:
    """One generation of the drain, under its fixed instance id."""
    return replay(orchestrator, run_input, respond, now, orchestration=DRAIN_ORCHESTRATOR,
                  instance_id=DRAIN_INSTANCE_ID, max_episodes=200)


def drain_input(batch_size: int = 10, per_generation: int = 10, pipeline: int | None = PIPELINE,
                ) -> dict[str, Any]:
    run = DrainRun("run1", NOW, batch_size, per_generation, max_attempts=5,
                   retry_delay=1.0).to_json()
    if pipeline is None:
        del run["pipeline"]  # as a drain started before the field existed
    else:
        run["pipeline"] = pipeline
    return run


def staged_run(instance_id: str, records: int) -> RunInput:
    return RunInput(RunProgress("asset-events", instance_id, records, 200, 1, NOW.isoformat()),
                    3, 1.0, 10, 5.0)


@dataclass
class CountingQueue:
    """`due` events wait; a batch leaves the queue when settled, a finish is quiet when
    none is due."""

    due: int
    taken: dict[str, int] = field(default_factory=dict)
    next_row: int = 0

    def take(self, instance_id: str, limit: int) -> int:
        count = min(limit, self.due)
        self.taken[instance_id] = count
        return count

    def cursor(self, count: int) -> EventKey | None:
        self.next_row += count
        return EventKey("Asset", f"{self.next_row:06d}") if count else None

    def respond(self, name: str, request: dict[str, Any], now: datetime) -> Any:
        if name == EVENT_DRAIN_TAKE_AND_STAGE:
            return self.take_and_stage(TakeStageRequest.from_json(request)).to_json()
        if name == SUB_ORCHESTRATOR:
            return {"status": BatchStatus.SUCCESSFUL.value, "failedRecords": 0}
        if name == EVENT_DRAIN_SETTLE_AND_ADVANCE:
            advance = SettleAdvanceRequest.from_json(request)
            settled = self.settle(advance.batch.instance_id)
            finish = None
            if advance.finish_if_quiet:
                finish = FinishReason.EVENTS_DUE if self.due else FinishReason.IDLE
                if finish is FinishReason.IDLE:
                    return SettleAdvanceResult(settled, finish).to_json()
            following = (self.take_and_stage(advance.next) if advance.next is not None
                         else None)
            return SettleAdvanceResult(settled, finish, following).to_json()
        if name == EVENT_DRAIN_FINISH:
            return FinishResult(FinishReason.EVENTS_DUE if self.due
                                else FinishReason.IDLE).to_json()
        if name == EVENT_DRAIN_TAKE_BATCH:
            take = TakeBatchRequest.from_json(request)
            count = min(take.limit, self.due)
            refs = [EventRef("Asset", str(self.next_row + n), Operation.UPSERT, None, 0,
                             f"etag{n}") for n in range(count)]
            return TakeBatchResult(refs, self.cursor(count)).to_json()
        if name == EVENT_DRAIN_STAGE_BATCH:
            stage = StageBatchRequest.from_json(request)
            self.taken[stage.instance_id] = len(stage.events)
            return StageBatchResult(staged_run(stage.instance_id, len(stage.events))).to_json()
        if name == EVENT_DRAIN_SETTLE_BATCH:
            settle = SettleBatchRequest.from_json(request)
            return self.settle(settle.batch.instance_id).to_json()
        raise AssertionError(f"unexpected activity {name}")

    def take_and_stage(self, request: TakeStageRequest) -> StagedBatch:
        count = self.take(request.instance_id, request.limit)
        return StagedBatch(request.instance_id, count, 0, count == request.limit,
                           self.cursor(count),
                           staged_run(request.instance_id, count) if count else None)

    def settle(self, instance_id: str) -> SettleBatchResult:
        removed = self.taken.pop(instance_id)
        self.due -= removed
        return SettleBatchResult(removed=removed)


def test_a_drain_takes_each_batch_with_its_settle_and_finishes_after_the_short_one(
        orchestrator):
    queue = CountingQueue(due=45)

    run = replay_drain(orchestrator, drain_input(), queue.respond, NOW)

    assert run.names() == [EVENT_DRAIN_TAKE_AND_STAGE] + [
        SUB_ORCHESTRATOR, EVENT_DRAIN_SETTLE_AND_ADVANCE] * 5
    assert [request["instance_id"] for name, request in run.calls
            if name == EVENT_DRAIN_TAKE_AND_STAGE] == ["drain-run1-1"]
    nexts = [request["next"] for name, request in run.calls
             if name == EVENT_DRAIN_SETTLE_AND_ADVANCE]
    assert [n["instance_id"] for n in nexts] == [f"drain-run1-{i}" for i in range(2, 7)]
    # Only the short fifth batch tries to finish.
    assert [request["finish_if_quiet"] for name, request in run.calls
            if name == EVENT_DRAIN_SETTLE_AND_ADVANCE] == [False] * 4 + [True]
    assert DrainRun.from_json(run.output).processed == 45
    assert queue.due == 0


def test_pipeline_2_needs_fewer_episodes_and_activities_than_pipeline_1(orchestrator):
    pipeline_2 = replay_drain(orchestrator, drain_input(), CountingQueue(due=45).respond, NOW)
    pipeline_1 = replay_drain(orchestrator, drain_input(pipeline=1),
                              CountingQueue(due=45).respond, NOW)

    assert DrainRun.from_json(pipeline_1.output).processed == 45
    # An episode per answer and the first: take, stage, instance, settle per batch; then
    # an empty take and the finish.
    assert pipeline_1.episodes == 1 + 5 * 4 + 2
    # The first take; the instance and its settle (with the next take) per batch.
    assert pipeline_2.episodes == 1 + 1 + 5 * 2
    assert len(pipeline_2.calls) < len(pipeline_1.calls)


def test_a_full_last_batch_is_followed_by_an_empty_take_and_the_finish(orchestrator):
    queue = CountingQueue(due=20)

    run = replay_drain(orchestrator, drain_input(), queue.respond, NOW)

    assert run.names() == [EVENT_DRAIN_TAKE_AND_STAGE,
                           SUB_ORCHESTRATOR, EVENT_DRAIN_SETTLE_AND_ADVANCE,
                           SUB_ORCHESTRATOR, EVENT_DRAIN_SETTLE_AND_ADVANCE,
                           EVENT_DRAIN_FINISH]
    assert DrainRun.from_json(run.output).processed == 20


def test_a_generation_settles_its_last_batch_without_taking_and_continues_as_new(
        orchestrator):
    queue = CountingQueue(due=45)

    run = replay_drain(orchestrator, drain_input(per_generation=2), queue.respond, NOW)

    advances = [request for name, request in run.calls
                if name == EVENT_DRAIN_SETTLE_AND_ADVANCE]
    assert [a["next"] is None for a in advances] == [False, True]
    assert queue.taken == {}  # nothing taken that the next generation would not settle
    carried = DrainRun.from_json(run.continued_with)
    assert (carried.generation, carried.batches, carried.processed) == (2, 2, 20)
    assert carried.cursor == EventKey("Asset", "000020")


def test_a_drain_started_before_pipeline_2_replays_pipeline_1_until_its_next_generation(
        orchestrator):
    queue = CountingQueue(due=45)

    run = replay_drain(orchestrator, drain_input(per_generation=2, pipeline=None),
                       queue.respond, NOW)

    assert run.names() == [EVENT_DRAIN_TAKE_BATCH, EVENT_DRAIN_STAGE_BATCH, SUB_ORCHESTRATOR,
                           EVENT_DRAIN_SETTLE_BATCH] * 2
    carried = DrainRun.from_json(run.continued_with)
    assert (carried.pipeline, carried.batches, carried.processed) == (PIPELINE, 2, 20)

    following = replay_drain(orchestrator, run.continued_with, queue.respond, NOW)
    assert following.names() == [EVENT_DRAIN_TAKE_AND_STAGE] + [
        SUB_ORCHESTRATOR, EVENT_DRAIN_SETTLE_AND_ADVANCE] * 2
    assert DrainRun.from_json(following.continued_with).processed == 40
