"""The benchmark job's step functions, shared by the host app and the in-process floor.

The job does what the issue's example does: check a record, map it to a Contact, and
upsert the Contacts in groups of 200 through sObject Collections (the example job's own
commit, `shared.batch.contacts.upsert_contacts`, against the Salesforce simulator).
`accept_group` is a commit that does nothing, for the floor of trivial functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.batch import Aggregator, BatchJob, BatchRecord, BatchStep, SchedulingStrategy
from shared.batch.contacts import upsert_contacts
from shared.batch.job import CommitFunction
from shared.config import AppSettings

BLOCK_SIZES = (10, 100, 1000)
GROUP_SIZE = 200
MAX_CONCURRENCY = 4
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


def bench_commit(settings: AppSettings) -> CommitFunction:
    """The aggregator's commit: upsert Contact by External_Id__c (sObject Collections)."""
    return upsert_contacts(settings)


def bench_job_name(block_size: int, strategy: SchedulingStrategy) -> str:
    return f"bench-{block_size}-{strategy.value.lower().replace('_', '-')}"


def bench_jobs(settings: AppSettings) -> list[BatchJob]:
    commit = bench_commit(settings)
    return [BatchJob(bench_job_name(size, strategy), block_size=size, max_failed_records=-1,
                     max_concurrency=MAX_CONCURRENCY, scheduling_strategy=strategy, steps=(
                         BatchStep("check", check), BatchStep("map", to_contact),
                         BatchStep("load", aggregator=Aggregator(size=GROUP_SIZE,
                                                                 commit=commit))))
            for size in BLOCK_SIZES for strategy in SchedulingStrategy]


def bench_records(count: int, prefix: str = "C") -> list[dict]:
    return [{"id": f"{prefix}-{n}", "name": f"name {n}", "email": f"user{n}@example.com"}
            for n in range(count)]
