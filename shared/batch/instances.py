"""The instances of each job in Table Storage: creation order, status and last counts.

One row per instance (PartitionKey = job, RowKey = instance id). Creating the row is how
an instance id is claimed (a second claim is refused), its `created` time orders the
ORDERED_SEQUENTIAL queue, and `GET /api/batch-jobs/{job}` lists the rows.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.storage.tables import ConcurrentWrite, create_entity

ACTIVE = ("STAGING", "EXECUTABLE", "EXECUTING")
# A row still STAGING after this long belongs to a starter that died: not a predecessor.
ABANDONED_STAGING = timedelta(minutes=10)


@dataclass(frozen=True)
class InstanceRow:
    job: str
    instance_id: str
    durable_id: str
    created: datetime
    status: str
    result: dict[str, Any] | None

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> InstanceRow:
        result = entity.get("Result")
        return cls(entity["PartitionKey"], entity["RowKey"], entity.get("DurableId", ""),
                   datetime.fromisoformat(entity["Created"]), entity.get("Status", ""),
                   json.loads(result) if result else None)

    def is_active(self, now: datetime) -> bool:
        if self.status == "STAGING":
            return now - self.created < ABANDONED_STAGING
        return self.status in ACTIVE


def claim_instance(table: TableClient, job: str, instance_id: str, durable_id: str,
                   now: datetime) -> bool:
    """Create the instance's row; False when the id was used before (by any request)."""
    try:
        create_entity(table, {"PartitionKey": job, "RowKey": instance_id,
                              "DurableId": durable_id, "Created": now.isoformat(),
                              "Status": "STAGING"})
    except ConcurrentWrite:
        return False
    return True


def release_instance(table: TableClient, job: str, instance_id: str) -> None:
    """Free an id whose staging failed, so the client can post it again."""
    with contextlib.suppress(ResourceNotFoundError):
        table.delete_entity(job, instance_id)


def set_status(table: TableClient, job: str, instance_id: str, status: str,
               result: dict[str, Any] | None = None) -> None:
    entity: dict[str, Any] = {"PartitionKey": job, "RowKey": instance_id, "Status": status}
    if result is not None:
        entity["Result"] = json.dumps(result)
    table.update_entity(entity, mode=UpdateMode.MERGE)


def job_instances(table: TableClient, job: str) -> list[InstanceRow]:
    """Every instance of `job`, oldest first."""
    rows = [InstanceRow.from_entity(dict(entity)) for entity in
            table.query_entities("PartitionKey eq @job", parameters={"job": job})]
    return sorted(rows, key=lambda row: (row.created, row.instance_id))


def first_active(table: TableClient, job: str, now: datetime | None = None) -> InstanceRow | None:
    """The oldest instance of `job` not ended yet: the one whose turn it is."""
    now = now or datetime.now(UTC)
    return next((row for row in job_instances(table, job) if row.is_active(now)), None)
