"""The instances of each job in Table Storage: creation order, status and last counts.

One row per instance (PartitionKey = job, RowKey = instance id), written STAGING by the
request that holds the id's claim (`shared.batch.claims`), then EXECUTABLE once its
orchestration started. Its `created` time orders the ORDERED_SEQUENTIAL queue (a request
that takes an abandoned claim over writes the row anew: it queues from then), and
`GET /api/batch-jobs/{job}` lists the rows a page at a time (`instances_page`). A STAGING
row counts in the queue only while its claim is alive (held or started): the caller says
which are (`first_active`).

The queue reads only the rows that may still run (`active_instances`: Status one of
ACTIVE_STATUSES, filtered by the table service), never the finished ones that pile up
until the retention purge removes them. The filter names the active statuses rather than
excluding the ended ones: a comparison with a property a row lacks is false in Table
Storage (and in Azurite), so an exclusion would silently drop rows, and an instance the
queue cannot see runs out of turn.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.storage.tables import ConcurrentWrite, read_entity, replace_if_unchanged

STAGING = "STAGING"
EXECUTABLE = "EXECUTABLE"
EXECUTING = "EXECUTING"
STARTED = (EXECUTABLE, EXECUTING)
# An ended row whose instance the retention purge is deleting (shared.batch.retention).
PURGING = "PURGING"
# Every status a row holds before its instance's final row is written (BatchStatus's
# EXECUTABLE and EXECUTING, and STAGING); tests/batch/test_batch_instances.py keeps it so.
ACTIVE_STATUSES = (STAGING, *STARTED)
# The parentheses matter: `and` binds tighter than `or`, and without them the query reads
# the active rows of every job. The spaces inside them matter too: the SDK finds the
# @parameters by splitting the filter on spaces, so "@status2)" would name no parameter.
_ACTIVE_FILTER = "PartitionKey eq @job and ( " + " or ".join(
    f"Status eq @status{index}" for index in range(len(ACTIVE_STATUSES))) + " )"


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

    def is_active(self, live_staging: Collection[str]) -> bool:
        if self.status == STAGING:
            return self.instance_id in live_staging
        return self.status in STARTED


def record_staging(table: TableClient, job: str, instance_id: str, durable_id: str,
                   now: datetime) -> None:
    """Write the row of an instance whose claim this request holds (anew after a takeover:
    the instance queues from `now`)."""
    table.upsert_entity({"PartitionKey": job, "RowKey": instance_id, "DurableId": durable_id,
                         "Created": now.isoformat(), "Status": STAGING},
                        mode=UpdateMode.REPLACE)


def mark_row_started(table: TableClient, job: str, instance_id: str) -> None:
    """STAGING -> EXECUTABLE, from the running orchestration (its request may have died
    before writing it); a row past STAGING is left as it is."""
    stored = read_entity(table, job, instance_id)
    if stored is None or stored.values.get("Status") != STAGING:
        return
    with contextlib.suppress(ConcurrentWrite):
        replace_if_unchanged(table, {**stored.values, "Status": EXECUTABLE}, stored.etag)


def mark_row_executing(table: TableClient, job: str, instance_id: str,
                       result: dict[str, Any]) -> bool:
    """STAGING or EXECUTABLE -> EXECUTING with the result so far, under the row's ETag, as
    the instance takes its turn. A row past those is left as it is: a redelivery of this
    write after the finish step must not make an ended row active again (the ordered queue
    would wait on it for good). False when the row was left (or is gone)."""
    while True:
        stored = read_entity(table, job, instance_id)
        if stored is None or stored.values.get("Status") not in (STAGING, EXECUTABLE):
            return False
        try:
            replace_if_unchanged(table, {**stored.values, "Status": EXECUTING,
                                         "Result": json.dumps(result)}, stored.etag)
        except ConcurrentWrite:  # marked started meanwhile, or ended: read it again
            continue
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


def instances_page(table: TableClient, job: str, limit: int,
                   after: str | None = None) -> tuple[list[InstanceRow], str | None]:
    """At most `limit` instances of `job` in instance id order (the table's), those after
    the id `after`; and the `after` of the next page, None when this one is the last. Reads
    at most `limit` + 1 rows, however many the job has."""
    query = "PartitionKey eq @job" + (" and RowKey gt @after" if after is not None else "")
    entities = table.query_entities(query, parameters={"job": job, "after": after or ""},
                                    results_per_page=limit + 1)
    rows: list[InstanceRow] = []
    for entity in entities:
        rows.append(InstanceRow.from_entity(dict(entity)))
        if len(rows) > limit:
            break
    return rows[:limit], rows[limit - 1].instance_id if len(rows) > limit else None


def active_instances(table: TableClient, job: str) -> list[InstanceRow]:
    """The instances of `job` that may still run (staging, waiting or executing), oldest
    first: what the ordered queue looks at. Ended rows are left on the server."""
    parameters = {"job": job, **{f"status{index}": status
                                 for index, status in enumerate(ACTIVE_STATUSES)}}
    rows = [InstanceRow.from_entity(dict(entity)) for entity in
            table.query_entities(_ACTIVE_FILTER, parameters=parameters)]
    return sorted(rows, key=lambda row: (row.created, row.instance_id))


def staging_rows(rows: Collection[InstanceRow]) -> list[InstanceRow]:
    return [row for row in rows if row.status == STAGING]


def first_active(rows: Collection[InstanceRow], live_staging: Collection[str]
                 ) -> InstanceRow | None:
    """The oldest of `rows` (oldest first) not ended yet: the one whose turn it is. A
    STAGING row counts only if its id is in `live_staging` (its claim is alive)."""
    return next((row for row in rows if row.is_active(live_staging)), None)
