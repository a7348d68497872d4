"""The benchmark job's step functions, shared by the host app and the in-process floor."""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.batch import Aggregator, BatchJob, BatchRecord, BatchStep, SchedulingStrategy

BLOCK_SIZES = (10, 100, 1000)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


def check(record: BatchRecord) -> None:
    if not _EMAIL.fullmatch(record.payload["email"]):
        raise ValueError("bad email")


def to_contact(record: BatchRecord) -> dict:
    payload = record.payload
    return {"External_Id__c": payload["id"], "LastName": payload["name"].title(),
            "Email": payload["email"].lower()}


def accept_group(group: Sequence[BatchRecord]) -> list[BaseException | None]:
    return [None if record.payload["External_Id__c"] else ValueError("no id")
            for record in group]


def bench_job_name(block_size: int, strategy: SchedulingStrategy) -> str:
    return f"bench-{block_size}-{strategy.value.lower().replace('_', '-')}"


def bench_jobs() -> list[BatchJob]:
    return [BatchJob(bench_job_name(size, strategy), block_size=size, max_failed_records=-1,
                     max_concurrency=4, scheduling_strategy=strategy, steps=(
                         BatchStep("check", check), BatchStep("map", to_contact),
                         BatchStep("load", aggregator=Aggregator(size=200,
                                                                 commit=accept_group))))
            for size in BLOCK_SIZES for strategy in SchedulingStrategy]


def bench_records(count: int) -> list[dict]:
    return [{"id": f"C-{n}", "name": f"name {n}", "email": f"user{n}@example.com"}
            for n in range(count)]
