"""Settings of the batch engine, and per-deployment overrides of a job's knobs.

`BatchSettings` is a section of the app's settings object (`shared.config`), read and
validated at start-up with every other setting. A job's declared knobs can be overridden per
deployment with `BATCH_<JOB>_BLOCK_SIZE`, `BATCH_<JOB>_MAX_FAILED_RECORDS`,
`BATCH_<JOB>_MAX_CONCURRENCY` and `BATCH_<JOB>_SCHEDULING_STRATEGY` (`<JOB>`: the job's name
upper-cased, `-` as `_`); `job_with_overrides` applies and validates them when the jobs are
registered, i.e. at start-up. The example job's are declared below so that the README and
the Bicep list them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.batch.job import BatchJob, SchedulingStrategy
from shared.batch.source import BatchSource
from shared.config.framework import (
    SettingsError,
    parse_bool,
    parse_choice,
    parse_positive_int,
    parse_seconds,
    setting,
)


def parse_failure_limit(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected -1, 0 or a count, got {text!r}") from None
    if value < -1:
        raise ValueError(f"expected -1 (unlimited), 0 or a count, got {value}")
    return value


_STRATEGIES = tuple(strategy.value for strategy in SchedulingStrategy)
MIN_INSTANCE_RETENTION = 3600.0


@dataclass(frozen=True)
class BatchSettings:
    """Mule-Batch jobs (seed 004): where records are staged, instance bookkeeping, limits."""

    container: str = setting(
        "BATCH_CONTAINER",
        description="blob container of staged blocks, per-block record state, aggregator "
        "groups and failure reports of batch job instances",
        default="batch-jobs",
    )
    instances_table: str = setting(
        "BATCH_INSTANCES_TABLE",
        description="table of batch job instances: creation order (the ORDERED_SEQUENTIAL "
        "queue), status and counts",
        default="BatchInstances",
    )
    dead_letter_table: str = setting(
        "BATCH_DEAD_LETTER_TABLE",
        description="table the example job's ONLY_FAILURES step writes failed records to",
        default="BatchDeadLetters",
    )
    max_body_bytes: int = setting(
        "BATCH_MAX_BODY_BYTES",
        description="largest POST /api/batch-jobs/{job} body accepted (413 above)",
        default=50_000_000,
        parse=parse_positive_int,
    )
    blocks_per_generation: int = setting(
        "BATCH_BLOCKS_PER_GENERATION",
        description="blocks an instance's orchestration starts before continue_as_new, "
        "which keeps its history the same size whatever the record count",
        default=20,
        parse=parse_positive_int,
    )
    turn_check_interval: float = setting(
        "BATCH_TURN_CHECK_INTERVAL",
        description="seconds an ORDERED_SEQUENTIAL instance waits before checking again "
        "whether its predecessors ended (the wake-up event from the predecessor is the "
        "normal path; this is the safety net)",
        default=30.0,
        parse=parse_seconds,
    )
    activity_attempts: int = setting(
        "BATCH_ACTIVITY_ATTEMPTS",
        description="tries of a block or group activity that failed as a whole (storage "
        "unreachable) before the instance fails",
        default=3,
        parse=parse_positive_int,
    )
    activity_retry_delay: float = setting(
        "BATCH_ACTIVITY_RETRY_DELAY",
        description="seconds before the first retry of a failed batch activity "
        "(doubled each retry)",
        default=2.0,
        parse=parse_seconds,
    )
    instance_retention: float = setting(
        "BATCH_INSTANCE_RETENTION",
        description="seconds (or hh:mm:ss) a finished batch instance is kept after its last "
        "write: then the hourly purge deletes its row, blobs and orchestration history "
        "(never an active instance; its id stays used), and a STAGING one that never "
        "started goes as old; 0 keeps them forever",
        default=259_200.0,
        parse=parse_seconds,
    )
    contacts_enabled: bool = setting(
        "BATCH_CONTACTS_ENABLED",
        description="accept POST /api/batch-jobs/contacts (the example job: validate, map, "
        "upsert Contact by External_Id__c in groups of 200, dead-letter failures)",
        default=False,
        parse=parse_bool,
    )
    contacts_block_size: int | None = setting(
        "BATCH_CONTACTS_BLOCK_SIZE",
        description="records per block of the contacts job (default: as declared, 100)",
        default=None,
        parse=parse_positive_int,
    )
    contacts_max_failed_records: int | None = setting(
        "BATCH_CONTACTS_MAX_FAILED_RECORDS",
        description="failed records after which a contacts instance stops starting blocks: "
        "0 at the first, -1 never (default: as declared, -1)",
        default=None,
        parse=parse_failure_limit,
    )
    contacts_max_concurrency: int | None = setting(
        "BATCH_CONTACTS_MAX_CONCURRENCY",
        description="blocks of one contacts instance processed at once (default: as "
        "declared, 4)",
        default=None,
        parse=parse_positive_int,
    )
    contacts_scheduling_strategy: str | None = setting(
        "BATCH_CONTACTS_SCHEDULING_STRATEGY",
        description="ORDERED_SEQUENTIAL (instances one at a time, in creation order) or "
        "ROUND_ROBIN (side by side); default: as declared, ORDERED_SEQUENTIAL",
        default=None,
        parse=parse_choice(*_STRATEGIES),
    )

    def validate(self) -> list[str]:
        problems = []
        if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", self.container):
            problems.append(
                "BATCH_CONTAINER is malformed: a blob container name is 3-63 lower-case "
                f"letters, digits and single hyphens, got {self.container!r}")
        for name, value in (("BATCH_INSTANCES_TABLE", self.instances_table),
                            ("BATCH_DEAD_LETTER_TABLE", self.dead_letter_table)):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", value):
                problems.append(f"{name} is malformed: a table name is 3-63 letters and "
                                f"digits starting with a letter, got {value!r}")
        if self.contacts_block_size is not None and self.contacts_block_size > 10_000:
            problems.append("BATCH_CONTACTS_BLOCK_SIZE must be at most 10000")
        if self.contacts_max_concurrency is not None and self.contacts_max_concurrency > 64:
            problems.append("BATCH_CONTACTS_MAX_CONCURRENCY must be at most 64")
        if 0 < self.instance_retention < MIN_INSTANCE_RETENTION:
            problems.append(
                f"BATCH_INSTANCE_RETENTION must be 0 (keep forever) or at least "
                f"{MIN_INSTANCE_RETENTION:.0f} seconds, got {self.instance_retention:g}: a "
                "client reads an instance's result after it ended")
        if self.turn_check_interval <= 0:
            problems.append("BATCH_TURN_CHECK_INTERVAL must be above 0 seconds")
        return problems


_KNOBS = {
    "BLOCK_SIZE": ("block_size", parse_positive_int),
    "MAX_FAILED_RECORDS": ("max_failed_records", parse_failure_limit),
    "MAX_CONCURRENCY": ("max_concurrency", parse_positive_int),
    "SCHEDULING_STRATEGY": ("scheduling_strategy",
                            lambda text: SchedulingStrategy(parse_choice(*_STRATEGIES)(text))),
}


def knob_setting(job_name: str, knob: str) -> str:
    """The app setting that overrides `knob` (e.g. BLOCK_SIZE) of job `job_name`."""
    return f"BATCH_{job_name.upper().replace('-', '_')}_{knob}"


def _source_with_connection(job: BatchJob, environ: Mapping[str, str],
                            problems: list[str]) -> BatchSource | None:
    """The job's source with its connection string, read from the setting it names."""
    assert job.source is not None
    name = job.source.connection_setting
    connection = environ.get(name, "").strip()
    if not connection:
        problems.append(f"{name} is missing: the ODBC connection string of batch job "
                        f"{job.name!r}'s source")
        return None
    source = dataclasses.replace(job.source, connection_string=connection)
    try:
        source.sql_dialect()
    except ValueError as error:
        problems.append(f"{name}: {error}")
        return None
    return source


def job_with_overrides(job: BatchJob, environ: Mapping[str, str]) -> BatchJob:
    """`job` with the knobs its deployment overrides; SettingsError names each bad one."""
    # Field names come from the knob table, so each value's type is the parser's, not one.
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for knob, (field_name, parse) in _KNOBS.items():
        name = knob_setting(job.name, knob)
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            changes[field_name] = parse(raw)
        except ValueError as error:
            problems.append(f"{name} is malformed: {error}")
    if job.source is not None:
        source = _source_with_connection(job, environ, problems)
        if source is not None:
            changes["source"] = source
    if not problems and changes:
        try:
            return dataclasses.replace(job, **changes)
        except ValueError as error:
            problems.append(f"{', '.join(knob_setting(job.name, k) for k in _KNOBS)}: {error}")
    if problems:
        raise SettingsError(problems)
    return job
