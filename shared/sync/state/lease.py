"""The row `lock` of each job: a ShedLock-style lease, held for at most the max run time
and for at least the min interval after a start (`LockedUntil`/`LockedAt`/`RunId`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.data.tables import TableClient

from shared.storage.tables import (
    ConcurrentWrite,
    RowAsRead,
    StoredEntity,
    read_entity,
    replace_if_unchanged,
    write_entity,
)
from shared.sync.state.tables import as_utc

LOCK_ROW = "lock"


@dataclass(frozen=True)
class Lease:
    locked_until: datetime
    locked_at: datetime
    run_id: str
    etag: str


class Leases:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def read(self, job: str) -> Lease | None:
        return lease_from(read_entity(self.table, job, LOCK_ROW))

    def acquire(
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
            etag = write_entity(self.table, entity, seen.etag if seen else None)
        except ConcurrentWrite:
            return None
        return Lease(now + hold, now, run_id, etag)

    def release(self, job: str, run_id: str, now: datetime, min_interval: timedelta,
                seen: RowAsRead | None = None) -> bool:
        """End `run_id`'s hold: free at `max(now, locked_at + min_interval)` (lockAtLeastFor).

        Does nothing (False) when the lease belongs to another run. `seen`: the lock row as
        the caller read it, tried first instead of reading it again.
        """
        for _attempt in range(5):
            lease = lease_from(seen.entity) if seen is not None else self.read(job)
            seen = None
            if lease is None or lease.run_id != run_id:
                return False
            until = max(now, lease.locked_at + min_interval)
            entity = {
                "PartitionKey": job, "RowKey": LOCK_ROW, "LockedUntil": until.isoformat(),
                "LockedAt": lease.locked_at.isoformat(), "RunId": run_id,
            }
            try:
                replace_if_unchanged(self.table, entity, lease.etag)
            except ConcurrentWrite:
                continue
            return True
        return False


def lease_from(stored: StoredEntity | None) -> Lease | None:
    """The lease a stored lock row holds (None: no row)."""
    if stored is None:
        return None
    values = stored.values
    locked_until, locked_at = as_utc(values["LockedUntil"]), as_utc(values["LockedAt"])
    assert locked_until is not None and locked_at is not None
    return Lease(locked_until, locked_at, values["RunId"], stored.etag)
