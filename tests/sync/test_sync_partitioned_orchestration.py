"""The sync_run orchestrator with key partitions, replayed through the real Durable SDK
(tests/replay_driver.py): a round fans out one page activity per partition not done yet,
a failed round is retried after a durable timer, the join comes once all are done."""

from __future__ import annotations

import pytest

from shared.sync.messages import PartitionProgress, RunInput, RunTotals
from tests.replay_driver import ActivityFailed
from tests.replay_driver import replay as replay_orchestration
from tests.sync.test_sync_run_orchestration import BOUND, START, orchestrator  # noqa: F401

POSITION = {"cursor": "2026-11-30T00:00:00", "key": "[30]"}


def run_input(partitions: int = 3, per_generation: int = 5, ends_with_join: bool = True,
              ) -> dict:
    return RunInput("asset-changes", "run-3", START, page_attempts=3, page_retry_delay=1.0,
                    pages_per_generation=per_generation, waits_for_recorded_jobs=True,
                    partitions=partitions, ends_with_join=ends_with_join).to_json()


def earlier_version_input(partitions: int) -> dict:
    """The input of a run started by a version that joined, then ended, in two activities."""
    old = run_input(partitions)
    del old["ends_with_join"]
    return old


class FakePartitions:
    """Partition k is done after `rounds[k]` page activities, each of 10 rows; `failing`:
    (round, partition, retryable) answered with a failed page instead."""

    def __init__(self, rounds: tuple[int, ...], failing=()) -> None:
        self.rounds, self.failing = list(rounds), list(failing)
        self.calls: list[tuple[str, dict]] = []
        self.done_by: dict[int, int] = {}

    def __call__(self, name, request, now):
        self.calls.append((name, request))
        if name == "sync_begin_run":
            return {"upper_bound": BOUND, "earlier_jobs": {"running": 0}}
        if name == "sync_pages":
            index = request["partition"]
            calls = self.done_by[index] = self.done_by.get(index, 0) + 1
            for failing in self.failing:
                if failing[:2] == (calls, index):
                    self.failing.remove(failing)
                    self.done_by[index] -= 1
                    return {"failure": {"code": "SERVER_UNAVAILABLE", "error": "sink down",
                                        "retryable": failing[2]}}
            return {"pages": 1, "rows": 10, "totals": RunTotals(calls, 10 * calls,
                                                                10 * calls, 0).to_json(),
                    "position": POSITION, "done": calls >= self.rounds[index]}
        if name in ("sync_join_partitions", "sync_end_partitioned_run"):
            rows = 10 * sum(self.rounds)
            return {"totals": RunTotals(sum(self.rounds), rows, rows, 0).to_json(),
                    "position": POSITION, "done": True}
        if name == "sync_end_run":
            return None
        raise AssertionError(f"unexpected activity {name}")


def replay(orchestrator, run, respond):  # noqa: F811
    return replay_orchestration(orchestrator, run, respond, START, orchestration="sync_run",
                                instance_id="sync-asset-changes")


def pages_rounds(run) -> list[list[int]]:
    """The partitions of each round of page activities, as scheduled."""
    rounds, current = [], []
    for name, request in run.calls:
        if name == "sync_pages":
            if request["partition"] in current:
                rounds.append(current)
                current = []
            current.append(request["partition"])
        elif current:
            rounds.append(current)
            current = []
    return [*rounds, current] if current else rounds


def test_rounds_fan_out_the_unfinished_partitions_then_join(orchestrator):  # noqa: F811
    run = replay(orchestrator, run_input(), FakePartitions((1, 3, 2)))

    assert pages_rounds(run) == [[0, 1, 2], [1, 2], [1]]
    # The join and the run's end are one activity: no sync_end_run after it.
    assert run.names()[-1] == "sync_end_partitioned_run"
    assert "sync_end_run" not in run.names() and "sync_join_partitions" not in run.names()
    ended = run.called("sync_end_partitioned_run")[0]
    assert (ended["partitions"], ended["run_id"]) == (3, "run-3")
    assert ended["started_at"].startswith(START.isoformat()[:19])
    assert run.called("sync_begin_run")[0]["partitions"] == 3
    assert {request["partitions"] for request in run.called("sync_pages")} == {3}
    assert run.output["rows"] == 60
    # The status sums the partitions: after round 2, 10 + 20 + 20 rows.
    shown = [(status["phase"], status["rows"]) for status in run.statuses if status]
    assert ("syncing partitions", 50) in shown and ("joining partitions", 60) in shown
    assert shown[-1] == ("succeeded", 60)


def test_a_run_started_by_an_earlier_version_joins_then_ends_in_two_activities(
    orchestrator,  # noqa: F811
):
    # Its history has sync_join_partitions, then sync_end_run: it must replay as it was.
    run = replay(orchestrator, earlier_version_input(3), FakePartitions((1, 3, 2)))

    assert pages_rounds(run) == [[0, 1, 2], [1, 2], [1]]
    assert run.names()[-2:] == ["sync_join_partitions", "sync_end_run"]
    assert "sync_end_partitioned_run" not in run.names()
    assert run.called("sync_join_partitions")[0]["partitions"] == 3
    end = run.called("sync_end_run")[0]
    assert (end["outcome"], end["totals"]["rows"]) == ("succeeded", 60)
    assert run.output["rows"] == 60


def test_a_failed_partition_is_retried_after_a_timer_with_the_unfinished_ones(
    orchestrator,  # noqa: F811
):
    run = replay(orchestrator, run_input(2), FakePartitions((2, 2), failing=[(1, 1, True)]))

    assert pages_rounds(run) == [[0, 1], [0, 1], [1]]
    assert len(run.timers) == 1
    assert run.names()[-1] == "sync_end_partitioned_run" and run.output["rows"] == 40


def test_a_partition_failed_for_good_ends_the_run_as_failed(orchestrator):  # noqa: F811
    fake = FakePartitions((2, 2), failing=[(1, 0, False)])
    with pytest.raises(Exception, match="sink down"):
        replay(orchestrator, run_input(2), fake)
    names = [name for name, _request in fake.calls]
    assert names == ["sync_begin_run", "sync_pages", "sync_pages", "sync_end_run"]
    assert fake.calls[-1][1]["outcome"] == "failed"
    assert fake.calls[-1][1]["totals"]["rows"] == 10  # partition 1's first activity


def test_a_generation_of_rounds_continues_as_new_with_each_partitions_progress(
    orchestrator,  # noqa: F811
):
    run = replay(orchestrator, run_input(2, per_generation=2), FakePartitions((1, 5)))

    assert pages_rounds(run) == [[0, 1], [1]]
    following = RunInput.from_json(run.continued_with)
    assert following.partition_progress == (
        PartitionProgress(RunTotals(1, 10, 10, 0), True),
        PartitionProgress(RunTotals(2, 20, 20, 0), False))
    assert (following.totals.rows, following.generation) == (30, 1)

    resumed = replay(orchestrator, following.to_json(), FakePartitions((1, 5)))
    assert pages_rounds(resumed) == [[1], [1]]  # partition 0 is not asked again


def test_a_run_input_without_partitions_replays_as_one_activity_at_a_time(
    orchestrator,  # noqa: F811
):
    old = run_input(1)
    for name in ("partitions", "partition_progress", "totals_before_partitions"):
        old.pop(name, None)

    class OnePiece(FakePartitions):
        def __call__(self, name, request, now):
            if name == "sync_pages":
                assert request.get("partition") is None
                return {"pages": 1, "rows": 10, "totals": RunTotals(1, 10, 10, 0).to_json(),
                        "position": POSITION, "done": True}
            return super().__call__(name, request, now)

    run = replay(orchestrator, old, OnePiece(()))
    assert run.names() == ["sync_begin_run", "sync_pages", "sync_end_run"]


def test_a_backlog_is_loaded_in_one_piece_and_the_rows_it_leaves_are_partitioned(
    orchestrator,  # noqa: F811
):
    class BacklogThenPartitions(FakePartitions):
        def __call__(self, name, request, now):
            if name == "sync_begin_run":
                return {"upper_bound": BOUND, "backlog": True,
                        "earlier_jobs": {"running": 0}}
            if name == "sync_settle_earlier_jobs":
                return {"running": 0}
            if name == "sync_stage_backlog":  # stopped before a record's second change
                return {"rows": 50, "position": POSITION, "stopped": "record_again",
                        "jobs": [{"id": "750J1", "state": "UploadComplete"}]}
            if name == "sync_poll_backlog":
                return {"jobs": [{"id": "750J1", "state": "JobComplete", "processed": 50}]}
            if name == "sync_finish_backlog":
                return {"totals": RunTotals(1, 50, 50, 0).to_json(), "position": POSITION}
            return super().__call__(name, request, now)

    run = replay(orchestrator, run_input(2), BacklogThenPartitions((1, 2)))

    names = run.names()
    assert names.count("sync_stage_backlog") == 1  # one stage, not one per partition
    assert names.index("sync_finish_backlog") < names.index("sync_pages")
    assert pages_rounds(run) == [[0, 1], [1]]
    shown = [(status["phase"], status["rows"]) for status in run.statuses if status]
    assert ("syncing partitions", 50 + 10 + 10) in shown  # the backlog's rows, then theirs



def test_a_partition_that_raised_ends_the_run_once_the_rest_of_its_round_ended(
    orchestrator,  # noqa: F811
):
    # The SDK's task_all raises at the first activity that raised and drops the others'
    # results: the run must still read them and count what they synced when it ends.
    class Raising(FakePartitions):
        def __call__(self, name, request, now):
            if name == "sync_pages" and request["partition"] == 0:
                self.calls.append((name, request))
                raise ActivityFailed("the worker process died")
            return super().__call__(name, request, now)

    fake = Raising((1, 1))
    with pytest.raises(Exception, match="the worker process died"):
        replay(orchestrator, run_input(2), fake)

    names = [name for name, _request in fake.calls]
    assert names == ["sync_begin_run", "sync_pages", "sync_pages", "sync_end_run"]
    end = fake.calls[-1][1]
    assert (end["outcome"], end["totals"]["rows"]) == ("failed", 10)  # partition 1's
    assert "\n" not in end["error"] and "Traceback" not in end["error"], end["error"]


class JoinFailsOnce(FakePartitions):
    failed = False
    joining = "sync_end_partitioned_run"
    retryable = True

    def __call__(self, name, request, now):
        if name == self.joining and not self.failed:
            self.failed = True
            self.calls.append((name, request))
            return {"failure": {"code": "CHECKPOINT_FAILED", "retryable": self.retryable,
                                "error": "storage unreachable"}}
        return super().__call__(name, request, now)


def test_a_join_that_failed_retryably_is_tried_again_after_a_timer(orchestrator):  # noqa: F811
    run = replay(orchestrator, run_input(2), JoinFailsOnce((1, 1)))

    assert run.names().count("sync_end_partitioned_run") == 2
    assert len(run.timers) == 1
    assert "sync_end_run" not in run.names()
    assert run.output["rows"] == 20


def test_a_join_that_failed_for_good_ends_the_run_as_failed(orchestrator):  # noqa: F811
    fake = JoinFailsOnce((1, 1))
    fake.retryable = False
    with pytest.raises(Exception, match="storage unreachable"):
        replay(orchestrator, run_input(2), fake)

    names = [name for name, _request in fake.calls]
    assert names[-2:] == ["sync_end_partitioned_run", "sync_end_run"]
    assert fake.calls[-1][1]["outcome"] == "failed"


def test_an_earlier_versions_join_that_failed_retryably_is_tried_again_then_ends(
    orchestrator,  # noqa: F811
):
    fake = JoinFailsOnce((1, 1))
    fake.joining = "sync_join_partitions"
    run = replay(orchestrator, earlier_version_input(2), fake)

    assert run.names().count("sync_join_partitions") == 2
    assert len(run.timers) == 1
    end = run.called("sync_end_run")[0]
    assert (end["outcome"], end["totals"]["rows"]) == ("succeeded", 20)
