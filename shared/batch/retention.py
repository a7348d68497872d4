"""The retention purge: finished instances older than BATCH_INSTANCE_RETENTION go, with
their blobs, their orchestration's history and their row; and so do instances that never
started (a STAGING row whose request died before starting it, or a sub-instance's row its
caller never started).

    0. the job's active rows (`sweep_active_rows`): each whose orchestration ended without
       its finish step (failed, terminated, gone) has its row settled (shared.batch.liveness),
       to be purged after the retention like any finished one; each STAGING one that never
       started and was written before the cutoff is purged now, its claim held meanwhile
       (`purge_never_started`), so no request takes the id over while its blobs go
    1. the job's ended rows last written before the cutoff (and rows a purge marked before)
    2. per row: mark it PURGING (ETag-guarded, so a row written meanwhile is left alone)
    3. delete the instance's blob folder
    4. forget its orchestration (the caller's durable client purges its history)
    5. delete its index row (`shared.batch.instances`), then the row (ETag-guarded)

The row is the purge's to-do list and goes last: a crash at any point leaves it, marked
PURGING, and the next run picks it up and finishes. A reader never trusts a row whose blobs
are gone, because such a row says PURGING. An active row (STAGING, EXECUTABLE, EXECUTING)
is never selected in step 1: the query names the ended statuses. The instance's claim blob
stays (`shared.batch.claims`), so its id is still refused as used after the purge; that of
an instance that never started stays abandoned, so a post of the id takes it over.
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
from azure.storage.blob import ContainerClient

from shared.batch.claims import (
    claim_instance_id,
    read_instance_claim,
    take_over_instance_claim,
)
from shared.batch.instances import (
    PURGING,
    STAGING,
    InstanceRow,
    active_instances,
    delete_index_row,
)
from shared.batch.liveness import FateKind, ReadOrchestration, fate_of, settle_row
from shared.batch.plan import BatchStatus
from shared.batch.store import BlobStore, InstanceFolder
from shared.storage.leased_claim import ClaimHold
from shared.storage.tables import ConcurrentWrite, read_entity, replace_if_unchanged

log = logging.getLogger(__name__)

ENDED_STATUSES = (BatchStatus.SUCCESSFUL.value, BatchStatus.FAILED_PROCESS_RECORDS.value,
                  BatchStatus.FAILED_INPUT.value, BatchStatus.FAILED_LOADING.value,
                  BatchStatus.FAILED.value, BatchStatus.STOPPED.value)
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
    """Step 5: the index row, then the row last, and only as the purge marked it."""
    delete_index_row(table, candidate.values)
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


async def sweep_active_rows(table: TableClient, container: ContainerClient, job: str,
                            read_orchestration: ReadOrchestration, now: datetime,
                            retention: timedelta | None) -> list[InstanceRow]:
    """Step 0: settle each active row of `job` whose instance ended without its finish
    step; return the STAGING ones that never started and were written before `now -
    retention` (none when `retention` is None: the purge is off)."""
    never_started = []
    for row in await asyncio.to_thread(active_instances, table, job):
        fate = await fate_of(row, container, read_orchestration, now)
        if fate.kind is FateKind.ENDED:
            await asyncio.to_thread(settle_row, table, row, fate)
        elif fate.kind is FateKind.NEVER_STARTED and retention is not None \
                and row.created < now - retention:
            never_started.append(row)
    return never_started


def _hold_unstarted_claim(container: ContainerClient, row: InstanceRow,
                          now: datetime) -> tuple[ClaimHold, bool] | None:
    """The lease of the claim of an instance that never started (and whether it was made
    here: a sub-instance's row has none), or None when a request holds or started it."""
    claim = read_instance_claim(container, row.job, row.instance_id)
    if claim is None:
        made = claim_instance_id(container, row.job, row.instance_id, "")
        return (made, True) if made is not None else None
    if claim.started or not claim.abandoned(now):
        return None
    taken = take_over_instance_claim(container, row.job, row.instance_id, claim.fingerprint)
    return (taken, False) if taken is not None else None


async def purge_never_started(table: TableClient, store: BlobStore,
                              container: ContainerClient, rows: Iterable[InstanceRow],
                              forget_orchestration: ForgetOrchestration,
                              now: datetime) -> int:
    """Steps 2-5 for STAGING rows that never started, each while this purge holds the
    id's claim (a post of the id meanwhile is told to post again shortly); the claim is
    let go after, or deleted when the purge made it. How many were purged."""
    purged = 0
    for row in rows:
        held = await asyncio.to_thread(_hold_unstarted_claim, container, row, now)
        if held is None:
            continue
        hold, made_here = held
        try:
            stored = await asyncio.to_thread(read_entity, table, row.job, row.instance_id)
            if stored is None or stored.values.get("Status") != STAGING \
                    or InstanceRow.from_entity(stored.values).created != row.created:
                continue  # written anew meanwhile: it queues from then
            purged += await purge_instances(table, store,
                                            [PurgeCandidate(stored.values, stored.etag)],
                                            forget_orchestration)
        finally:
            await asyncio.to_thread(hold.delete if made_here else hold.release)
    return purged
