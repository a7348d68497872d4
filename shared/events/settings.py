"""The event queue's settings section (a field of `shared.config.AppSettings`).

The queue reads the asset changes view through the `SYNC_ASSET_CHANGES_SOURCE_*` settings
and writes through the `SALESFORCE_*` ones: one source, one org, configured once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.config.framework import parse_ncrontab, parse_positive_int, parse_seconds, setting

MAX_BATCH_SIZE = 2000
TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


@dataclass(frozen=True)
class EventQueueSettings:
    """Where events wait, how the drain takes and retries them, and its safety timer."""

    queue_table: str = setting(
        "EVENTS_QUEUE_TABLE",
        description="table of waiting events, one row per object and id (the newest event)",
        default="EventQueue",
    )
    dead_letter_table: str = setting(
        "EVENTS_DEAD_LETTER_TABLE",
        description="table of events that failed on every attempt, with the last error",
        default="EventDeadLetters",
    )
    state_table: str = setting(
        "EVENTS_STATE_TABLE",
        description="table of the drain's signal row, totals and the newest processed "
        "version of each record",
        default="EventQueueState",
    )
    batch_size: int = setting(
        "EVENTS_BATCH_SIZE",
        description="events the drain takes at a time and runs through one instance of "
        "the batch job asset-events",
        default=200,
        parse=parse_positive_int,
    )
    batches_per_generation: int = setting(
        "EVENTS_BATCHES_PER_GENERATION",
        description="batches a drain orchestration handles before continue_as_new, which "
        "keeps its history small",
        default=10,
        parse=parse_positive_int,
    )
    max_attempts: int = setting(
        "EVENTS_MAX_ATTEMPTS",
        description="tries of an event before it moves to the dead-letter table",
        default=5,
        parse=parse_positive_int,
    )
    retry_delay: float = setting(
        "EVENTS_RETRY_DELAY",
        description="seconds before a failed event is tried again, doubled each attempt "
        "(capped at 15 minutes)",
        default=10.0,
        parse=parse_seconds,
    )
    safety_schedule: str = setting(
        "EVENTS_SAFETY_SCHEDULE",
        description="NCRONTAB schedule of the safety timer that starts the drain when "
        "events wait and no drain runs (bounds a lost wake-up; read as "
        "%EVENTS_SAFETY_SCHEDULE%, so it must be set in every deployment)",
        default="0 */1 * * * *",
        parse=parse_ncrontab,
    )
    max_body_bytes: int = setting(
        "EVENTS_MAX_BODY_BYTES",
        description="largest POST /api/events body accepted (413 above)",
        default=20_000_000,
        parse=parse_positive_int,
    )

    def validate(self) -> list[str]:
        problems = []
        if self.batch_size > MAX_BATCH_SIZE:
            problems.append(
                f"EVENTS_BATCH_SIZE is above {MAX_BATCH_SIZE}: a batch's references travel "
                "through orchestration history"
            )
        tables = (self.queue_table, self.dead_letter_table, self.state_table)
        for name, table in zip(("EVENTS_QUEUE_TABLE", "EVENTS_DEAD_LETTER_TABLE",
                                "EVENTS_STATE_TABLE"), tables, strict=True):
            if not TABLE_NAME.fullmatch(table):
                problems.append(f"{name} is malformed: a table name is 3-63 letters and "
                                f"digits starting with a letter, got {table!r}")
        if len(set(tables)) != len(tables):
            problems.append("EVENTS_QUEUE_TABLE, EVENTS_DEAD_LETTER_TABLE and "
                            "EVENTS_STATE_TABLE must name three different tables")
        return problems
