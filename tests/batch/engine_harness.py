"""The batch engine without any Functions runtime: the plan's decisions and the block and
group activities, run in threads over a MemoryBlobStore, as the orchestration runs them.

`run_instance(job, records)` stages the records, then loops like `batch_job`: start what
the plan asks (at most max_concurrency at once), feed each answer back, continue as new
(a fresh plan from the carried state) when the plan pauses, and return the result.
"""

from __future__ import annotations

import json
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.batch.blocks import commit_group, run_segment
from shared.batch.failures import write_failures_report
from shared.batch.job import BatchJob
from shared.batch.loading import stage_records
from shared.batch.messages import CommitRequest, SegmentRequest
from shared.batch.plan import BlockPlan, RunProgress
from shared.batch.result import batch_job_result
from shared.batch.store import InstanceFolder, MemoryBlobStore


@dataclass
class InstanceRun:
    result: dict[str, Any]
    store: MemoryBlobStore
    generations: int
    max_in_flight: int
    max_carried_bytes: int

    def failures_csv(self) -> str:
        stored = self.store.read(InstanceFolder(self.result["jobName"],
                                                self.result["batchJobInstanceId"]).failures_report)
        assert stored is not None
        return stored[0].decode()


def run_instance(job: BatchJob, records: list[dict[str, Any]], instance_id: str = "i1",
                 blocks_per_generation: int = 1000,
                 store: MemoryBlobStore | None = None) -> InstanceRun:
    store = store or MemoryBlobStore.empty()
    folder = InstanceFolder(job.name, instance_id)
    manifest = stage_records(store, folder, records, job.block_size)
    progress = RunProgress(job.name, instance_id, manifest.total_records, manifest.block_size,
                           manifest.block_count, datetime.now(UTC).isoformat(), turn_taken=True)
    generations = max_in_flight = max_carried = 0
    with ThreadPoolExecutor(max_workers=job.max_concurrency + 2) as pool:
        while True:
            generations += 1
            plan = BlockPlan.resume(job, progress, blocks_per_generation)
            in_flight: dict[Future, SegmentRequest | CommitRequest] = {}
            while True:
                for request in plan.next_requests(len(in_flight)):
                    if isinstance(request, SegmentRequest):
                        future = pool.submit(run_segment, job, store, request)
                    else:
                        future = pool.submit(commit_group, job, store, request)
                    in_flight[future] = request
                max_in_flight = max(max_in_flight, len(in_flight))
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    request = in_flight.pop(future)
                    if isinstance(request, SegmentRequest):
                        plan.record_segment(future.result())
                    else:
                        plan.record_commit(future.result())
            if plan.finished:
                break
            progress = plan.next_generation()
            max_carried = max(max_carried, len(json.dumps(progress.to_json())))
    write_failures_report(store, folder)
    result = batch_job_result(job, plan.carried(), plan.status, datetime.now(UTC))
    return InstanceRun(result, store, generations, max_in_flight, max_carried)
