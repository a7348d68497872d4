"""The instances of each job in Table Storage: creation order, status and last counts.

One row per instance (PartitionKey = job, RowKey = instance id), written STAGING by the
request that holds the id's claim (`shared.batch.claims`), then EXECUTABLE once its
orchestration started. Its `created` time orders the ORDERED_SEQUENTIAL queue (a request
that takes an abandoned claim over writes the row anew: it queues from then). A STAGING
row counts in the queue only while its claim is alive (held or started): the caller says
which are (`first_active`).

Beside each instance row, in the same partition and the same transaction, an index row
whose RowKey sorts newest first (`~` + the inverted creation time in microseconds + `-`
+ the instance id; `~` sorts after every instance id, which starts with a letter or a
digit). `GET /api/batch-jobs/{job}` lists the instances a page at a time, newest first
(`instances_page`): a page reads its index rows and then its instance rows, however many
the job has; its cursor is the last index key. A row written anew (a takeover) moves its
index row; one deleted (a failed start, the purge) loses its index row first.

The queue reads only the rows that may still run (`active_instances`: Status one of
ACTIVE_STATUSES, filtered by the table service), never the finished ones that pile up
until the retention purge removes them, nor the index rows (they have no Status). The
filter names the active statuses rather than excluding the ended ones: a comparison with a
property a row lacks is false in Table Storage (and in Azurite), so an exclusion would
silently drop rows, and an instance the queue cannot see runs out of turn.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.batch.store import side_by_side
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
INDEX_PREFIX = "~"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Microseconds since 1970 stay below it until the year 5138: the inverted time keeps 17
# digits, so the keys sort as numbers.
_NEWEST_FIRST_BASE = 10**17
# A page's cursor: an index key without its prefix.
PAGE_CURSOR = re.compile(r"[0-9]{17}-[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_INDEX_FILTER = "PartitionKey eq @job and RowKey gt @after and RowKey lt @end"


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


# The row that says every instance row of the job has its index row (after
# `index_earlier_rows`); its key sorts past every index key.
_INDEXED_MARKER = INDEX_PREFIX * 2 + "indexed"


def index_earlier_rows(table: TableClient, job: str) -> int:
    """Once per job: write the index row of every instance row written before index rows
    existed (a deployment upgraded in place), then the marker that says it is done; a run
    cut short is done again. How many instance rows were read (0 once marked)."""
    if read_entity(table, job, _INDEXED_MARKER) is not None:
        return 0
    read = 0
    for entity in table.query_entities("PartitionKey eq @job and RowKey lt @prefix",
                                       parameters={"job": job, "prefix": INDEX_PREFIX}):
        read += 1
        if "Created" in entity:
            table.upsert_entity(_index_entity(job, entity["RowKey"], datetime.fromisoformat(
                entity["Created"])), mode=UpdateMode.REPLACE)
    table.upsert_entity({"PartitionKey": job, "RowKey": _INDEXED_MARKER})
    return read


def index_key(instance_id: str, created: datetime) -> str:
    """The RowKey of an instance's index row: the newer, the smaller."""
    micros = (created - _EPOCH) // timedelta(microseconds=1)
    return f"{INDEX_PREFIX}{_NEWEST_FIRST_BASE - micros:017d}-{instance_id}"


def _index_entity(job: str, instance_id: str, created: datetime) -> dict[str, Any]:
    return {"PartitionKey": job, "RowKey": index_key(instance_id, created),
            "InstanceId": instance_id}


def _staging_entity(job: str, instance_id: str, durable_id: str,
                    now: datetime) -> dict[str, Any]:
    return {"PartitionKey": job, "RowKey": instance_id, "DurableId": durable_id,
            "Created": now.isoformat(), "Status": STAGING}


def _delete_index(table: TableClient, job: str, values: dict[str, Any] | None) -> None:
    """Delete the index row of the instance row `values` (as stored), if it has one."""
    if values is None or "Created" not in values:
        return
    with contextlib.suppress(ResourceNotFoundError):
        table.delete_entity(job, index_key(values["RowKey"],
                                           datetime.fromisoformat(values["Created"])))


def record_staging(table: TableClient, job: str, instance_id: str, durable_id: str,
                   now: datetime) -> None:
    """Write the row of an instance whose claim this request holds, and its index row
    (anew after a takeover: the instance queues, and is listed, from `now`)."""
    before = read_entity(table, job, instance_id)
    table.submit_transaction([
        ("upsert", _staging_entity(job, instance_id, durable_id, now),
         {"mode": UpdateMode.REPLACE}),
        ("upsert", _index_entity(job, instance_id, now), {"mode": UpdateMode.REPLACE})])
    if before is not None and before.values.get("Created") != now.isoformat():
        _delete_index(table, job, before.values)


def create_instance_row(table: TableClient, job: str, instance_id: str, durable_id: str,
                        now: datetime) -> None:
    """Create an instance's STAGING row and its index row, both or neither; raise
    ConcurrentWrite when the row exists."""
    try:
        table.submit_transaction([
            ("create", _staging_entity(job, instance_id, durable_id, now)),
            ("create", _index_entity(job, instance_id, now))])
    except TableTransactionError as error:
        if error.status_code == 409:
            raise ConcurrentWrite(f"{job}/{instance_id}: exists") from None
        raise


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
    """Free an id whose staging failed, so the client can post it again: its index row
    goes, then its row."""
    stored = read_entity(table, job, instance_id)
    _delete_index(table, job, stored.values if stored else None)
    with contextlib.suppress(ResourceNotFoundError):
        table.delete_entity(job, instance_id)


def delete_index_row(table: TableClient, values: dict[str, Any]) -> None:
    """Delete the index row of the instance row `values` (as stored); none is fine."""
    _delete_index(table, values["PartitionKey"], values)


def set_status(table: TableClient, job: str, instance_id: str, status: str,
               result: dict[str, Any] | None = None) -> None:
    entity: dict[str, Any] = {"PartitionKey": job, "RowKey": instance_id, "Status": status}
    if result is not None:
        entity["Result"] = json.dumps(result)
    table.update_entity(entity, mode=UpdateMode.MERGE)


def instances_page(table: TableClient, job: str, limit: int,
                   after: str | None = None) -> tuple[list[InstanceRow], str | None]:
    """At most `limit` instances of `job`, newest first, those after the cursor `after`
    (`PAGE_CURSOR`); and the cursor of the next page, None when this one is the last.
    Reads `limit` + 1 index rows and their instance rows, however many the job has (an
    index row whose instance row is gone or was written anew is passed, and one more read)."""
    parameters = {"job": job, "after": INDEX_PREFIX + (after or ""),
                  "end": INDEX_PREFIX * 2}
    pages = iter(table.query_entities(_INDEX_FILTER, parameters=parameters,
                                      results_per_page=limit + 1))
    found: list[tuple[str, InstanceRow]] = []
    while len(found) <= limit:
        batch = _take(pages, limit + 1 - len(found))
        if not batch:
            break
        for key, row in zip(batch, side_by_side(lambda key: _indexed_row(table, job, key),
                                                batch), strict=True):
            if row is not None:
                found.append((key, row))
    rows = [row for _key, row in found[:limit]]
    following = found[limit - 1][0][len(INDEX_PREFIX):] if len(found) > limit else None
    return rows, following


def _take(entities: Iterator[Any], count: int) -> list[str]:
    """The RowKeys of the next `count` index rows (fewer at the end)."""
    keys: list[str] = []
    for entity in entities:
        keys.append(entity["RowKey"])
        if len(keys) >= count:
            break
    return keys


def _indexed_row(table: TableClient, job: str, key: str) -> InstanceRow | None:
    """The instance row an index row names, None when it is gone or was written anew."""
    instance_id = key.split("-", 1)[1]
    stored = read_entity(table, job, instance_id)
    if stored is None or "Created" not in stored.values:
        return None
    row = InstanceRow.from_entity(stored.values)
    return row if index_key(instance_id, row.created) == key else None


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
