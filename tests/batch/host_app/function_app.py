"""The batch capability alone, wired as function_app.py wires it, with the tests' own jobs.

Their step functions write what they do to files under BATCH_TEST_LOG_DIR, so a test
counts calls per (step, record) across host restarts, and measures concurrency.
"""

import fcntl
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities import batch as batch_activities
from orchestrators import batch
from shared.batch import (
    AcceptPolicy,
    Aggregator,
    BatchJob,
    BatchRecord,
    BatchStep,
    SchedulingStrategy,
    register_batch_jobs,
)
from shared.batch.job import CommitFunction, StepFunction
from shared.batch.source import BatchSource, SourceFilter
from shared.config import app_settings

settings = app_settings()
LOG_DIR = Path(os.environ["BATCH_TEST_LOG_DIR"])
STEP_DELAY = float(os.environ.get("BATCH_TEST_STEP_DELAY", "0"))


def note(file: str, line: str) -> None:
    # O_APPEND writes of one short line land whole, whichever process writes them.
    fd = os.open(LOG_DIR / file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def counted(step: str, fail_every: int = 0) -> StepFunction:
    def run(record: BatchRecord) -> None:
        note("calls.log", f"{step},{record.instance_id},{record.index}")
        if STEP_DELAY:
            time.sleep(STEP_DELAY)
        if fail_every and record.index % fail_every == 0:
            raise ValueError(f"record {record.index} refused by {step}")
    return run


def counted_commit(step: str) -> CommitFunction:
    def commit(group: Sequence[BatchRecord]) -> list[BaseException | None]:
        for record in group:
            note("calls.log", f"{step},{record.instance_id},{record.index}")
        note("groups.log", f"{step},{group[0].instance_id},{len(group)}")
        return [LookupError(f"record {record.index} refused by the target")
                if record.index % 1000 == 7 else None for record in group]
    return commit


def in_window(record: BatchRecord) -> None:
    """Counts the step functions running at once (a file-locked counter), keeps the peak."""
    path = LOG_DIR / "window.txt"

    def change(delta: int) -> None:
        with open(path, "a+") as counter:
            fcntl.flock(counter, fcntl.LOCK_EX)
            counter.seek(0)
            running, peak = (int(part) for part in (counter.read().split() or ["0", "0"]))
            running += delta
            counter.seek(0)
            counter.truncate()
            counter.write(f"{running} {max(peak, running)}")

    change(+1)
    time.sleep(0.005)
    change(-1)


def ordered_note(record: BatchRecord) -> None:
    note("order.log", f"{record.instance_id},{record.index},{time.monotonic_ns()}")
    time.sleep(0.01)


def note_completion(result: Mapping[str, Any]) -> None:
    note("hook.log", f"{result['batchJobInstanceId']},{result['onCompleteAttempt']}")


jobs = (
    BatchJob("counted", block_size=100, max_failed_records=-1, max_concurrency=4,
             scheduling_strategy=SchedulingStrategy.ROUND_ROBIN, steps=(
                 BatchStep("a", counted("a", fail_every=97)),
                 BatchStep("b", aggregator=Aggregator(size=200, commit=counted_commit("b"))),
                 BatchStep("c", counted("c")),
                 BatchStep("d", counted("d"), accept_policy=AcceptPolicy.ONLY_FAILURES),
             )),
    BatchJob("window", block_size=5, max_concurrency=3,
             scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
             steps=(BatchStep("slow", in_window),)),
    BatchJob("ordered", block_size=5, max_concurrency=2,
             scheduling_strategy=SchedulingStrategy.ORDERED_SEQUENTIAL,
             steps=(BatchStep("note", ordered_note),)),
    BatchJob("side-by-side", block_size=5, max_concurrency=2,
             scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
             steps=(BatchStep("note", ordered_note),)),
    BatchJob("hooked", block_size=5, scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
             steps=(BatchStep("a", counted("a")),), on_complete=note_completion),
    BatchJob("stop-early", block_size=10, max_failed_records=3, max_concurrency=2,
             scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
             steps=(BatchStep("a", counted("a", fail_every=2)),)),
)

def note_row(record: BatchRecord) -> None:
    row = record.payload
    note("rows.log", "|".join(str(value) for value in (
        record.instance_id, record.index, row["Asset_ID"], row["Status"], row["Price"],
        row["Install_Date"], row["ChangeTimestamp"])))


# A job reading its records from a view, when a test gives one (its connection setting
# must be set, like any setting a job names).
from_view = [BatchJob(
    "from-view", block_size=10, max_concurrency=2,
    scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
    steps=(BatchStep("note", note_row),),
    source=BatchSource(
        relation=os.environ["BATCH_TEST_SOURCE_VIEW"],
        columns=("Asset_ID", "Status", "Price", "Install_Date", "ChangeTimestamp"),
        order_by=("Asset_ID",), connection_setting="BATCH_TEST_SOURCE_CONNECTION",
        filters=(SourceFilter("Status", "status"),
                 SourceFilter("ChangeTimestamp", "since", ">=", kind="timestamp",
                              required=False),
                 SourceFilter("Asset_ID", "maxId", "<=", kind="integer", required=False))),
)] if os.environ.get("BATCH_TEST_SOURCE_VIEW") else []

register_batch_jobs(*jobs, *from_view)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(batch.blueprint)  # POST/GET /api/batch-jobs/..., batch_job
app.register_functions(batch_activities.blueprint)
