"""The retention purge: finished instances older than BATCH_INSTANCE_RETENTION go, with
their blobs, their orchestration's history and their row.

    1. the job's ended rows last written before the cutoff (and rows a purge marked before)
    2. per row: mark it PURGING (ETag-guarded, so a row written meanwhile is left alone)
    3. delete the instance's blob folder
    4. forget its orchestration (the caller's durable client purges its history)
    5. delete the row (ETag-guarded)

The row is the purge's to-do list and goes last: a crash at any point leaves it, marked
PURGING, and the next run picks it up and finishes. A reader never trusts a row whose blobs
are gone, because such a row says PURGING. An active row (STAGING, EXECUTABLE, EXECUTING)
is never selected: the query names the ended statuses. The instance's claim blob stays
(`shared.batch.claims`), so its id is still refused as used after the purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.batch.instances import PURGING, InstanceRow
from shared.batch.plan import BatchStatus
from shared.batch.store import BlobStore, InstanceFolder
from shared.storage.tables import ConcurrentWrite, replace_if_unchanged

log = logging.getLogger(__name__)

ENDED_STATUSES = (BatchStatus.SUCCESSFUL.value, BatchStatus.FAILED_PROCESS_RECORDS.value,
                  BatchStatus.FAILED_INPUT.value, BatchStatus.FAILED_LOADING.value)
# Spaces around every @parameter: the SDK finds them by splitting the filter on spaces.
_PURGEABLE_FILTER = (
    "PartitionKey eq @job and ( Status eq @purging or ( Timestamp lt @cutoff and ( "
    + " or ".join(f"Status eq @ended{index}" for index in range(len(ENDED_STATUSES)))
    + " ) ) )")

# Purges the history of an orchestration, by its durable instance id.
ForgetOrchestration = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class PurgeCandidate:
    """A row to purge as read (or as marked), with its ETag."""

    values: dict[str, Any]
    etag: str

    @property
    def row(self) -> InstanceRow:
        return InstanceRow.from_entity(self.values)

    @property
    def folder(self) -> InstanceFolder:
        return InstanceFolder(self.values["PartitionKey"], self.values["RowKey"])


def purgeable_instances(table: TableClient, job: str, now: datetime, retention: timedelta,
                        limit: int) -> list[PurgeCandidate]:
    """At most `limit` rows of `job` to purge: ended and last written before `now -
    retention`, or marked PURGING by a purge that did not finish."""
    parameters = {"job": job, "purging": PURGING, "cutoff": now - retention,
                  **{f"ended{index}": status for index, status in enumerate(ENDED_STATUSES)}}
    found = []
    for entity in table.query_entities(_PURGEABLE_FILTER, parameters=parameters,
                                       results_per_page=min(limit, 1000)):
        found.append(PurgeCandidate(dict(entity), str(entity.metadata["etag"])))
        if len(found) >= limit:
            break
    return found


def mark_purging(table: TableClient, candidate: PurgeCandidate) -> PurgeCandidate | None:
    """Step 2: the row says PURGING before anything it points to goes; None when the row
    changed since it was read (a later run looks at it again)."""
    if candidate.values.get("Status") == PURGING:
        return candidate
    marked = {**candidate.values, "Status": PURGING}
    try:
        return PurgeCandidate(marked, replace_if_unchanged(table, marked, candidate.etag))
    except ConcurrentWrite:
        return None


def delete_purged_row(table: TableClient, candidate: PurgeCandidate) -> None:
    """Step 5: the row goes last, and only as the purge marked it."""
    with contextlib.suppress(ResourceNotFoundError):
        table.delete_entity(candidate.values["PartitionKey"], candidate.values["RowKey"],
                            etag=candidate.etag, match_condition=MatchConditions.IfNotModified)


async def purge_instances(table: TableClient, store: BlobStore,
                          candidates: Iterable[PurgeCandidate],
                          forget_orchestration: ForgetOrchestration) -> int:
    """Steps 2-5 for each candidate, in that order; how many instances were purged. One
    that fails is left PURGING for the next run, and the others go on."""
    purged = 0
    for candidate in candidates:
        try:
            marked = await asyncio.to_thread(mark_purging, table, candidate)
            if marked is None:
                continue
            await asyncio.to_thread(store.delete_folder, marked.folder.prefix)
            await forget_orchestration(marked.row.durable_id)
            await asyncio.to_thread(delete_purged_row, table, marked)
        except Exception:  # storage or the durable API failed: the next run finishes it
            log.exception("batch %s %s: purge not finished; the next run goes on with it",
                          candidate.folder.job, candidate.folder.instance_id)
            continue
        purged += 1
    return purged
