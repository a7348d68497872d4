"""Settings sections of the scheduled change sync: `sync` (shared by every job) and one
section per job (`asset_changes_sync`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.config.framework import (
    parse_bool,
    parse_choice,
    parse_container_name,
    parse_http_url,
    parse_int_between,
    parse_ncrontab,
    parse_non_negative_int,
    parse_positive_int,
    parse_seconds,
    parse_table_name,
    setting,
)
from shared.sql.dialects import dialect_for_connection_string
from shared.sql.identifiers import split_qualified_name


@dataclass(frozen=True)
class SyncSettings:
    """Where the scheduled change sync keeps its state, and how runs retry."""

    watermark_table: str = setting(
        "SYNC_WATERMARK_TABLE",
        description="table of each sync job's watermark, lock lease and tick counters",
        default="SyncWatermarks",
        parse=parse_table_name,
    )
    runs_table: str = setting(
        "SYNC_RUNS_TABLE",
        description="table with one row per sync run (start, end, pages, rows, outcome, error)",
        default="SyncRuns",
        parse=parse_table_name,
    )
    dead_letter_table: str = setting(
        "SYNC_DEAD_LETTER_TABLE",
        description="table of records the sink or the mapping rejected (key, code, message)",
        default="SyncDeadLetters",
        parse=parse_table_name,
    )
    page_attempts: int = setting(
        "SYNC_PAGE_ATTEMPTS",
        description="tries of a page whose sink call failed as a whole (5xx, timeout, "
        "limit) before the run fails with the watermark untouched",
        default=4,
        parse=parse_positive_int,
    )
    page_retry_delay: float = setting(
        "SYNC_PAGE_RETRY_DELAY",
        description="seconds before the first retry of a failed page, doubled each retry "
        "(capped at 5 minutes)",
        default=5.0,
        parse=parse_seconds,
    )
    pages_per_generation: int = setting(
        "SYNC_PAGES_PER_GENERATION",
        description="page activities (or rounds of key partitions) a run orchestration "
        "calls before continue_as_new, which keeps its history small",
        default=20,
        parse=parse_positive_int,
    )
    activity_budget: float = setting(
        "SYNC_ACTIVITY_BUDGET",
        description="seconds one page activity keeps syncing pages (no page is started "
        "after it); fewer activities, less dispatch between pages",
        default=30.0,
        parse=parse_seconds,
    )
    pages_per_activity: int = setting(
        "SYNC_PAGES_PER_ACTIVITY",
        description="most pages one page activity syncs before it answers",
        default=1000,
        parse=parse_positive_int,
    )
    checkpoint_pages: int = setting(
        "SYNC_CHECKPOINT_PAGES",
        description="accepted pages that may wait for their watermark checkpoint (written "
        "while the next page is synced); after a crash at most these pages and "
        "SYNC_PAGES_IN_FLIGHT more are sent again (fewer once SYNC_CHECKPOINT_INTERVAL "
        "passed: a checkpoint each second while pages come slower than this many a second)",
        default=50,
        parse=parse_positive_int,
    )
    checkpoint_interval: float = setting(
        "SYNC_CHECKPOINT_INTERVAL",
        description="least seconds between two checkpoints while fewer than "
        "SYNC_CHECKPOINT_PAGES pages wait for theirs (0: write each as soon as possible)",
        default=1.0,
        parse=parse_seconds,
    )
    pages_in_flight: int = setting(
        "SYNC_PAGES_IN_FLIGHT",
        description="pages handed to the sink at once (1 to 16), their checkpoints still "
        "written in order; a page writing a record that one in flight writes (by the key the "
        "sink writes by: the external id) waits for it. "
        "After a crash at most SYNC_CHECKPOINT_PAGES + this many pages are sent again",
        default=4,
        parse=parse_int_between(1, 16),
    )
    salesforce_parallel_calls: int = setting(
        "SYNC_SALESFORCE_PARALLEL_CALLS",
        description="sObject Collections calls (200 records each) a page sends at once to "
        "Salesforce",
        default=4,
        parse=parse_positive_int,
    )
    backlog_container: str = setting(
        "SYNC_BACKLOG_CONTAINER",
        description="blob container where a backlog run keeps the record key and cursor "
        "of each row it sent to Bulk API 2.0, to dead-letter what Salesforce rejects "
        "(deleted once the run advanced its watermark), and the id of each upsert job it "
        "submitted, so that no run writes on while a job of a crashed attempt or a failed "
        "run still runs (forgotten once the job ended)",
        default="sync-backlogs",
        parse=parse_container_name,
    )
    backlog_poll_interval: float = setting(
        "SYNC_BACKLOG_POLL_INTERVAL",
        description="most seconds between two checks of a backlog run's ingest jobs (a "
        "durable timer; the first check comes half a second after staging, the wait "
        "doubling up to this)",
        default=5.0,
        parse=parse_seconds,
    )
    backlog_part_rows: int = setting(
        "SYNC_BACKLOG_PART_ROWS",
        description="rows per Bulk API 2.0 upsert job of a backlog run; a part's job is "
        "submitted as soon as the part is written, while the next part is read",
        default=50_000,
        parse=parse_positive_int,
    )
    source_login_timeout: int = setting(
        "SYNC_SOURCE_LOGIN_TIMEOUT",
        description="seconds to wait for the source database to accept a connection",
        default=15,
        parse=parse_positive_int,
    )
    source_query_timeout: int = setting(
        "SYNC_SOURCE_QUERY_TIMEOUT",
        description="seconds a page query may run on the source database",
        default=120,
        parse=parse_positive_int,
    )


@dataclass(frozen=True)
class AssetChangesSyncSettings:
    """The example job `asset-changes` (seed 000): asset changes view -> Salesforce Asset."""

    enabled: bool = setting(
        "SYNC_ASSET_CHANGES_ENABLED",
        description="run the asset-changes sync job on its schedule",
        default=False,
        parse=parse_bool,
    )
    schedule: str = setting(
        "SYNC_ASSET_CHANGES_SCHEDULE",
        description="NCRONTAB schedule of the job's timer (the timer reads this setting "
        "as %SYNC_ASSET_CHANGES_SCHEDULE%, so it must be set in every deployment)",
        default="0 */2 * * * *",
        parse=parse_ncrontab,
    )
    connection: str | None = setting(
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION",
        description="ODBC connection string of the source database "
        "(a Key Vault reference in Azure)",
        default=None,
        secret=True,
    )
    dialect: str | None = setting(
        "SYNC_ASSET_CHANGES_SOURCE_DIALECT",
        description="tsql, postgresql or sqlite; empty: from the connection string's Driver",
        default=None,
        parse=parse_choice("tsql", "postgresql", "sqlite"),
    )
    view: str = setting(
        "SYNC_ASSET_CHANGES_SOURCE_VIEW",
        description="view (or table) of asset changes, `object` or `schema.object`",
        default="dbo.Usr_SW_Salesforce_Assets_Changes_V",
    )
    lag: float = setting(
        "SYNC_ASSET_CHANGES_LAG",
        description="seconds behind the database clock a run stops reading, so rows of "
        "transactions still open at the run's start are read by the next run",
        default=30.0,
        parse=parse_seconds,
    )
    initial_watermark: str = setting(
        "SYNC_ASSET_CHANGES_INITIAL_WATERMARK",
        description="ChangeTimestamp the first run starts after",
        default="1900-01-01 00:00:00.000",
    )
    page_size: int = setting(
        "SYNC_ASSET_CHANGES_PAGE_SIZE",
        description="rows per page (one source query, one sink call series, one checkpoint)",
        default=500,
        parse=parse_positive_int,
    )
    max_run_time: float = setting(
        "SYNC_ASSET_CHANGES_MAX_RUN_TIME",
        description="a run older than this is terminated by the next tick (lockAtMostFor)",
        default=1800.0,
        parse=parse_seconds,
    )
    min_interval: float = setting(
        "SYNC_ASSET_CHANGES_MIN_INTERVAL",
        description="no run starts sooner than this after the previous start (lockAtLeastFor)",
        default=30.0,
        parse=parse_seconds,
    )
    backlog_threshold: int = setting(
        "SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD",
        description="changed rows above which a run with the salesforce sink loads them "
        "with Bulk API 2.0 upsert jobs instead of sObject Collections (0: never)",
        default=10_000,
        parse=parse_non_negative_int,
    )
    partitions: int = setting(
        "SYNC_ASSET_CHANGES_PARTITIONS",
        description="key partitions a run's pages are synced in, side by side (1 to 16), "
        "each by its own activity from its own checkpointed position (Asset_ID modulo "
        "this); on a host with several worker processes or instances they run in "
        "parallel. The watermark advances once every partition reached the run's end. "
        "1: one activity at a time. A Bulk API backlog is loaded in one piece",
        default=1,
        parse=parse_int_between(1, 16),
    )
    sink: str = setting(
        "SYNC_ASSET_CHANGES_SINK",
        description="salesforce (sObject Collections upsert of Asset by External_Id__c) "
        "or http (POST JSON batches to SYNC_ASSET_CHANGES_HTTP_URL)",
        default="salesforce",
        parse=parse_choice("salesforce", "http"),
    )
    http_url: str | None = setting(
        "SYNC_ASSET_CHANGES_HTTP_URL",
        description="endpoint the http sink POSTs batches to (seed 000's Process API)",
        default=None,
        parse=parse_http_url,
    )
    http_authorization: str | None = setting(
        "SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION",
        description="value of the http sink's Authorization header "
        "(a Key Vault reference in Azure)",
        default=None,
        secret=True,
    )

    def validate(self) -> list[str]:
        problems = []
        if self.enabled and not self.connection:
            problems.append(
                "SYNC_ASSET_CHANGES_SOURCE_CONNECTION is missing: SYNC_ASSET_CHANGES_ENABLED "
                "is true"
            )
        if self.enabled and self.sink == "http" and not self.http_url:
            problems.append(
                "SYNC_ASSET_CHANGES_HTTP_URL is missing: SYNC_ASSET_CHANGES_SINK is http"
            )
        if self.min_interval > self.max_run_time:
            problems.append(
                "SYNC_ASSET_CHANGES_MIN_INTERVAL exceeds SYNC_ASSET_CHANGES_MAX_RUN_TIME: "
                "a run must be allowed to end before the next may start"
            )
        try:
            split_qualified_name(self.view)
        except ValueError as error:
            problems.append(f"SYNC_ASSET_CHANGES_SOURCE_VIEW is malformed: {error}")
        if self.connection and not self.dialect:
            try:
                dialect_for_connection_string(self.connection)
            except ValueError as error:
                problems.append(f"SYNC_ASSET_CHANGES_SOURCE_DIALECT is missing: {error}")
        try:
            datetime.fromisoformat(self.initial_watermark.strip())
        except ValueError:
            problems.append(
                "SYNC_ASSET_CHANGES_INITIAL_WATERMARK is malformed: expected a timestamp "
                f"such as 1900-01-01 00:00:00.000, got {self.initial_watermark!r}"
            )
        return problems
