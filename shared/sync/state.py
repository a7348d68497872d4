"""What a sync job keeps between runs, in Table Storage, always under ETag conditions.

- watermarks table, partition = job name:
  - row `watermark`: the last delivered position `(cursor, key)` and the run that owns it.
    A run claims it at its start; a page is checkpointed only with the ETag read before the
    page was fetched, so a terminated (zombie) run can never move it, nor move it backwards.
  - row `lock`: the ShedLock-style lease `LockedUntil`/`LockedAt`/`RunId`.
  - row `ticks`: counters of timer ticks (started, skipped busy/held, terminated).
- runs table, partition = job name, one row per run, newest first.
- dead-letter table, partition = job name, one row per rejected record change.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TableServiceClient

from shared.sql.keyset import Position
from shared.storage.tables import (
    ConcurrentWrite,
    read_entity,
    replace_if_unchanged,
    safe_key,
    table_client,
    write_entity,
)
from shared.sync.positions import decode_cursor, decode_key, encode_cursor, encode_key, is_after

log = logging.getLogger(__name__)

WATERMARK_ROW = "watermark"
LOCK_ROW = "lock"
TICKS_ROW = "ticks"
MAX_TEXT = 30_000  # a Table Storage string property holds at most 32 K characters


class WatermarkConflict(Exception):
    """The watermark changed under this run: another run claimed it, or it would go back."""


@dataclass(frozen=True)
class Watermark:
    position: Position
    run_id: str | None
    updated_at: datetime | None
    etag: str | None  # None: not stored yet


@dataclass(frozen=True)
class Lease:
    locked_until: datetime
    locked_at: datetime
    run_id: str
    etag: str


@dataclass(frozen=True)
class DeadLetter:
    record_key: str
    cursor: str | None
    code: str
    message: str
    record: dict[str, Any] | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


class SyncState:
    """The three tables of one storage account; one instance serves every job."""

    def __init__(
        self, service: TableServiceClient, watermark_table: str, runs_table: str,
        dead_letter_table: str,
    ) -> None:
        self.watermarks: TableClient = table_client(service, watermark_table)
        self.runs: TableClient = table_client(service, runs_table)
        self.dead_letters: TableClient = table_client(service, dead_letter_table)

    # -- watermark ------------------------------------------------------------------

    def read_watermark(self, job: str, kind: str, initial: Position) -> Watermark:
        stored = read_entity(self.watermarks, job, WATERMARK_ROW)
        if stored is None:
            return Watermark(initial, None, None, None)
        values = stored.values
        return Watermark(
            Position(decode_cursor(kind, values["Cursor"]), decode_key(values.get("Key"))),
            values.get("RunId") or None,
            _utc(values.get("UpdatedAt")),
            stored.etag,
        )

    def _watermark_entity(self, job: str, kind: str, position: Position, run_id: str) -> dict:
        return {
            "PartitionKey": job,
            "RowKey": WATERMARK_ROW,
            "CursorKind": kind,
            "Cursor": encode_cursor(kind, position.cursor),
            "Key": encode_key(position.key),
            "RunId": run_id,
            "UpdatedAt": utc_now().isoformat(),
        }

    def claim_watermark(self, job: str, kind: str, initial: Position, run_id: str) -> Watermark:
        """Make `run_id` the watermark's owner; from now on only it may advance it."""
        for _attempt in range(5):
            current = self.read_watermark(job, kind, initial)
            entity = self._watermark_entity(job, kind, current.position, run_id)
            try:
                etag = write_entity(self.watermarks, entity, current.etag)
            except ConcurrentWrite:
                continue
            return Watermark(current.position, run_id, _utc(entity["UpdatedAt"]), etag)
        raise WatermarkConflict(f"could not claim the watermark of {job}: it kept changing")

    def advance_watermark(
        self, job: str, kind: str, current: Watermark, new_position: Position, run_id: str
    ) -> Watermark:
        """Checkpoint: write `new_position` only if nobody wrote since `current` was read."""
        if current.run_id != run_id:
            raise WatermarkConflict(
                f"the watermark of {job} belongs to run {current.run_id}, not to run {run_id}"
            )
        if not is_after(new_position, current.position):
            raise WatermarkConflict(
                f"the watermark of {job} would move backwards or stay: "
                f"{new_position} is not after {current.position}"
            )
        entity = self._watermark_entity(job, kind, new_position, run_id)
        try:
            etag = write_entity(self.watermarks, entity, current.etag)
        except ConcurrentWrite:
            raise WatermarkConflict(
                f"the watermark of {job} was changed by another run since run {run_id} read it"
            ) from None
        return Watermark(new_position, run_id, _utc(entity["UpdatedAt"]), etag)

    # -- lock (lease) -----------------------------------------------------------------

    def read_lease(self, job: str) -> Lease | None:
        stored = read_entity(self.watermarks, job, LOCK_ROW)
        if stored is None:
            return None
        values = stored.values
        return Lease(
            _utc(values["LockedUntil"]), _utc(values["LockedAt"]), values["RunId"], stored.etag
        )

    def acquire_lease(
        self, job: str, seen: Lease | None, run_id: str, now: datetime, hold: timedelta
    ) -> Lease | None:
        """Take the lease if it is still as `seen` (the decision was made on it).

        Returns the new lease, or None when another starter changed it first.
        """
        entity = {
            "PartitionKey": job,
            "RowKey": LOCK_ROW,
            "LockedUntil": (now + hold).isoformat(),
            "LockedAt": now.isoformat(),
            "RunId": run_id,
        }
        try:
            etag = write_entity(self.watermarks, entity, seen.etag if seen else None)
        except ConcurrentWrite:
            return None
        return Lease(now + hold, now, run_id, etag)

    def release_lease(
        self, job: str, run_id: str, now: datetime, min_interval: timedelta
    ) -> bool:
        """End `run_id`'s hold: free at `max(now, locked_at + min_interval)` (lockAtLeastFor).

        Does nothing (False) when the lease belongs to another run.
        """
        for _attempt in range(5):
            lease = self.read_lease(job)
            if lease is None or lease.run_id != run_id:
                return False
            until = max(now, lease.locked_at + min_interval)
            entity = {
                "PartitionKey": job, "RowKey": LOCK_ROW, "LockedUntil": until.isoformat(),
                "LockedAt": lease.locked_at.isoformat(), "RunId": run_id,
            }
            try:
                replace_if_unchanged(self.watermarks, entity, lease.etag)
            except ConcurrentWrite:
                continue
            return True
        return False

    # -- tick counters ----------------------------------------------------------------

    def count_tick(self, job: str, outcome: str, now: datetime | None = None) -> None:
        """Add one to the counter of `outcome` (started, skipped_busy, ...); best effort."""
        column = "".join(part.capitalize() for part in outcome.split("_"))
        for attempt in range(50):
            stored = read_entity(self.watermarks, job, TICKS_ROW)
            values = dict(stored.values) if stored else {"PartitionKey": job, "RowKey": TICKS_ROW}
            values[column] = int(values.get(column, 0)) + 1
            values["LastTick"] = (now or utc_now()).isoformat()
            values["LastOutcome"] = outcome
            try:
                write_entity(self.watermarks, values, stored.etag if stored else None)
                return
            except ConcurrentWrite:
                # Jittered backoff: ticks that collided once should not collide again.
                time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))  # noqa: S311
        log.warning("job %s: tick counter %s not updated: too many concurrent writers",
                    job, column)

    def tick_counters(self, job: str) -> dict[str, Any]:
        stored = read_entity(self.watermarks, job, TICKS_ROW)
        if stored is None:
            return {}
        return {
            key: value for key, value in stored.values.items()
            if key not in {"PartitionKey", "RowKey"}
        }

    # -- runs -------------------------------------------------------------------------

    @staticmethod
    def run_row_key(started_at: datetime, run_id: str) -> str:
        # Newest first in the partition's natural order.
        inverted = 10**13 - int(started_at.timestamp() * 1000)
        return f"{inverted:013d}-{safe_key(run_id)}"

    def record_run(self, job: str, run_id: str, started_at: datetime, **fields: Any) -> None:
        """Create or merge the run's row (outcome, counts, error, ...)."""
        entity = {
            "PartitionKey": job,
            "RowKey": self.run_row_key(started_at, run_id),
            "RunId": run_id,
            "StartedAt": started_at.isoformat(),
        }
        for name, value in fields.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, str):
                value = value[:MAX_TEXT]
            entity[name] = value
        self.runs.upsert_entity(entity)

    def close_open_run(
        self, job: str, run_id: str, started_at: datetime, outcome: str, ended_at: datetime,
        error: str,
    ) -> bool:
        """End a run whose row still says running (its instance ended without recording it,
        e.g. terminated through the Durable API). True when this call closed it."""
        stored = read_entity(self.runs, job, self.run_row_key(started_at, run_id))
        if stored is None or stored.values.get("Outcome") != "running":
            return False
        row = {**stored.values, "Outcome": outcome, "EndedAt": ended_at.isoformat(),
               "Error": error[:MAX_TEXT]}
        try:
            replace_if_unchanged(self.runs, row, stored.etag)
        except ConcurrentWrite:  # the run itself, or another tick, wrote it meanwhile
            return False
        return True

    def last_runs(self, job: str, count: int = 10) -> list[dict[str, Any]]:
        rows = self.runs.query_entities(
            "PartitionKey eq @job", parameters={"job": job}, results_per_page=count
        )
        result = []
        for row in rows:
            result.append({
                key: value for key, value in row.items()
                if key not in {"PartitionKey", "RowKey"}
            })
            if len(result) >= count:
                break
        return result

    # -- dead letters -----------------------------------------------------------------

    def add_dead_letters(self, job: str, run_id: str, letters: list[DeadLetter]) -> None:
        """One row per record change (key + cursor): a replayed page rewrites, never adds."""
        at = utc_now().isoformat()
        for letter in letters:
            record_text = (
                json.dumps(letter.record, default=str)[:MAX_TEXT] if letter.record else ""
            )
            self.dead_letters.upsert_entity({
                "PartitionKey": job,
                "RowKey": safe_key(f"{letter.record_key}|{letter.cursor or ''}"),
                "RecordKey": letter.record_key,
                "Cursor": letter.cursor or "",
                "ErrorCode": letter.code[:256],
                "ErrorMessage": letter.message[:MAX_TEXT],
                "Record": record_text,
                "RunId": run_id,
                "At": at,
            })

    def dead_letter_rows(self, job: str) -> list[dict[str, Any]]:
        return list(
            self.dead_letters.query_entities("PartitionKey eq @job", parameters={"job": job})
        )
