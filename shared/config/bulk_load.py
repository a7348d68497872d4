"""Settings section `bulk_load`: parent-child Bulk API 2.0 loads (seed 002)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config.framework import (
    parse_container_name,
    parse_positive_int,
    parse_seconds,
    parse_table_name,
    setting,
)


@dataclass(frozen=True)
class BulkLoadSettings:
    """Parent-child Bulk API 2.0 loads (seed 002): polling, limits and where CSV is staged."""

    poll_interval: float = setting(
        "BULK_LOAD_POLL_INTERVAL",
        description="longest time between two checks of a level's ingest jobs (a durable "
        "timer); the first level's first check comes 0.5 s after its jobs were closed, then "
        "the wait doubles up to this; a later level is checked when its jobs should end at "
        "the pace Salesforce showed on the level before",
        default=10.0,
        parse=parse_seconds,
    )
    max_wait: float = setting(
        "BULK_LOAD_MAX_WAIT",
        description="seconds a level's jobs may take after they were closed; a job still "
        "running then is aborted and the level reported as stalled (JOB_STALLED). Waiting "
        "costs nothing (durable timers), so the default is 12 hours",
        default=43_200.0,
        parse=parse_seconds,
    )
    max_body_bytes: int = setting(
        "BULK_LOAD_MAX_BODY_BYTES",
        description="largest POST /api/bulk-loads body accepted (413 above)",
        default=50_000_000,
        parse=parse_positive_int,
    )
    upload_limit_bytes: int = setting(
        "BULK_LOAD_UPLOAD_LIMIT_BYTES",
        description="largest CSV uploaded to one ingest job; a level above it is split "
        "into several jobs (Salesforce accepts 150 MB base64, about 100 MB of CSV)",
        default=100_000_000,
        parse=parse_positive_int,
    )
    container: str = setting(
        "BULK_LOAD_CONTAINER",
        description="blob container of staged records and CSV, ID maps and failure reports",
        default="bulk-loads",
        parse=parse_container_name,
    )
    jobs_table: str = setting(
        "BULK_LOAD_JOBS_TABLE",
        description="table of the ingest job each part of a load created: a create whose "
        "answer was lost (crash, timeout) finds the job it left Open and aborts it",
        default="BulkLoadJobs",
        parse=parse_table_name,
    )
    activity_attempts: int = setting(
        "BULK_LOAD_ACTIVITY_ATTEMPTS",
        description="tries of an activity that failed (Salesforce or storage unreachable) "
        "before the level is reported failed",
        default=3,
        parse=parse_positive_int,
    )
    activity_retry_delay: float = setting(
        "BULK_LOAD_ACTIVITY_RETRY_DELAY",
        description="seconds before the first retry of a failed activity (doubled each retry)",
        default=5.0,
        parse=parse_seconds,
    )

    def validate(self) -> list[str]:
        problems = []
        if self.poll_interval <= 0:
            problems.append("BULK_LOAD_POLL_INTERVAL must be above 0 seconds")
        if self.max_wait < self.poll_interval:
            problems.append(
                "BULK_LOAD_MAX_WAIT is shorter than BULK_LOAD_POLL_INTERVAL: a job would be "
                "aborted before it was checked twice"
            )
        if self.upload_limit_bytes > 100_000_000:
            problems.append(
                "BULK_LOAD_UPLOAD_LIMIT_BYTES is above 100000000: Salesforce refuses uploads "
                "over 150 MB of base64"
            )
        return problems
