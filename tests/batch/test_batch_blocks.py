"""Block and group activities are idempotent: a redelivery answers the same, re-runs nothing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

from shared.batch.blocks import commit_group, run_segment
from shared.batch.job import Aggregator, BatchJob, BatchRecord, BatchStep, StepFunction
from shared.batch.loading import stage_records
from shared.batch.messages import BlockGroups, CommitRequest, GroupSlice, SegmentRequest
from shared.batch.store import InstanceFolder, MemoryBlobStore


def _job(calls: Counter, commits: list[int]) -> BatchJob:
    lock = threading.Lock()

    def count(name: str) -> StepFunction:
        def run(record: BatchRecord) -> None:
            with lock:
                calls[(name, record.index)] += 1
        return run

    def commit(group: Sequence[BatchRecord]) -> list[BaseException | None]:
        commits.append(len(group))
        return [None] * len(group)

    return BatchJob("idem", block_size=10, steps=(
        BatchStep("a", count("a")), BatchStep("b", count("b")),
        BatchStep("agg", aggregator=Aggregator(size=10, commit=commit)),
        BatchStep("c", count("c"))))


def test_a_redelivered_segment_answers_the_same_and_runs_no_step_again() -> None:
    calls: Counter = Counter()
    commits: list[int] = []
    job = _job(calls, commits)
    store = MemoryBlobStore.empty()
    stage_records(store, InstanceFolder("idem", "i"), [{"n": n} for n in range(10)], 10)
    first = SegmentRequest("idem", "i", 0, 0)
    answer = run_segment(job, store, first)
    assert (answer.stopped_at, answer.pending) == (2, 10)
    assert run_segment(job, store, first) == answer
    commit = CommitRequest("idem", "i", 2, 0, [GroupSlice(0, 0, 10)])
    committed = commit_group(job, store, commit)
    assert commit_group(job, store, commit) == committed
    assert commits == [10]
    fold = SegmentRequest("idem", "i", 0, 2, fold=True, groups=[0])
    done = run_segment(job, store, fold)
    assert done.stopped_at == 4
    assert run_segment(job, store, fold) == done
    assert set(calls.values()) == {1}
    assert len(calls) == 30


def test_concurrent_deliveries_of_one_segment_agree() -> None:
    calls: Counter = Counter()
    job = _job(calls, [])
    store = MemoryBlobStore.empty()
    stage_records(store, InstanceFolder("idem", "i"), [{"n": n} for n in range(10)], 10)
    request = SegmentRequest("idem", "i", 0, 0)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(run_segment(job, store, request)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(answer == answers[0] for answer in answers)
    assert (answers[0].stopped_at, answers[0].pending) == (2, 10)


def test_the_commit_taking_a_blocks_last_records_goes_on_with_it_once() -> None:
    calls: Counter = Counter()
    commits: list[int] = []
    job = _job(calls, commits)
    store = MemoryBlobStore.empty()
    stage_records(store, InstanceFolder("idem", "i"), [{"n": n} for n in range(10)], 10)
    run_segment(job, store, SegmentRequest("idem", "i", 0, 0))
    # The block's records wait in two groups; the one committed first cannot go on yet.
    together = [BlockGroups(0, [0, 1])]
    first = commit_group(job, store, CommitRequest("idem", "i", 2, 0, [GroupSlice(0, 0, 6)],
                                                   together))
    assert first.continued == []
    second = commit_group(job, store, CommitRequest("idem", "i", 2, 1, [GroupSlice(0, 6, 4)],
                                                    together))
    assert [(answer.block, answer.stopped_at) for answer in second.continued] == [(0, 4)]
    assert [tally.received for tally in second.continued[0].tallies] == [10]
    # A redelivery of either commit neither commits again nor runs step c again.
    again = commit_group(job, store, CommitRequest("idem", "i", 2, 0, [GroupSlice(0, 0, 6)],
                                                   together))
    assert again.continued == []
    assert commits == [6, 4]
    assert calls[("c", 0)] == 1 and len([key for key in calls if key[0] == "c"]) == 10
    # A fold segment after all (nobody reported the block) answers from the stored state.
    fold = run_segment(job, store, SegmentRequest("idem", "i", 0, 2, fold=True,
                                                  groups=[0, 1]))
    assert fold == second.continued[0]
    assert set(calls.values()) == {1}
