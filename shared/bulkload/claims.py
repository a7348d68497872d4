"""A load id loads once, ever; a load's staged records are loaded by one execution, ever.

    {container}/{load id}/claim        written by the first request for the id (metadata
                                       `started` once its orchestration started)
    {container}/{load id}/{run}/run-claim   the token of the execution loading the records

The Durable backend refuses a second start only while the first runs; after it ended, a
start would replace it, and its restart API starts a new execution over the same input:
either would send every record again. These blobs refuse both.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient

from shared.bulkload.store import LoadStore
from shared.crash_points import crash_point
from shared.problems import Problem, problem

# POST /api/bulk-loads: the load id's claim is written, nothing is staged or started.
LOAD_ID_CLAIMED = "bulkload.claim.after_claim"
# bulk_load_claim_run: the run claim is written, the activity's result is not recorded.
RUN_CLAIMED = "bulkload.claim_run.after_claim"

# Longer than staging the largest accepted body takes: a request that claimed a load id
# this long ago and has not started its load is gone (crashed, host recycled).
ABANDONED_CLAIM_AFTER = timedelta(minutes=10)


def claim_load_id(service: BlobServiceClient, container: str, load_id: str) -> bool:
    """Create `{load id}/claim` unless it exists: only the first request for an id starts it.

    The Durable backend refuses a second start only while the first runs; after it ended,
    a start would replace it. The claim makes a load id usable once, ever.
    """
    store = LoadStore(service.get_container_client(container), load_id)
    store.ensure_container()
    try:
        store.container.upload_blob(store.name("claim"), b"", overwrite=False)
    except ResourceExistsError:
        return False
    crash_point(LOAD_ID_CLAIMED)
    return True


@dataclass(frozen=True)
class LoadClaim:
    """The claim of a load id as stored: did its load start, when was it last written."""

    started: bool
    written_at: datetime
    etag: str


def _claim_blob(service: BlobServiceClient, container: str, load_id: str) -> BlobClient:
    return service.get_container_client(container).get_blob_client(f"{load_id}/claim")


def read_load_claim(service: BlobServiceClient, container: str, load_id: str) -> LoadClaim | None:
    try:
        properties = _claim_blob(service, container, load_id).get_blob_properties()
    except ResourceNotFoundError:
        return None
    return LoadClaim(started=(properties.metadata or {}).get("started") == "true",
                     written_at=properties.last_modified, etag=properties.etag)


def mark_load_started(service: BlobServiceClient, container: str, load_id: str) -> None:
    """Record on the claim that the orchestration was started (it may be purged later)."""
    _claim_blob(service, container, load_id).set_blob_metadata({"started": "true"})


def take_over_load_claim(
    service: BlobServiceClient, container: str, load_id: str, claim: LoadClaim
) -> bool:
    """Re-take a claim whose request died before starting its load; only one taker wins."""
    try:
        _claim_blob(service, container, load_id).upload_blob(
            b"", overwrite=True, etag=claim.etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def release_load_id(service: BlobServiceClient, container: str, load_id: str) -> None:
    """Undo a claim whose load could not be started, so the client can post it again."""
    with contextlib.suppress(ResourceNotFoundError):
        service.get_container_client(container).delete_blob(f"{load_id}/claim")


class LoadAlreadyRan(Exception):
    """The staged records of a load were already loaded by another execution."""


def claim_load_run(store: LoadStore, run_token: str) -> None:
    """Let one orchestration execution load these staged records, ever.

    The first execution writes its token; the same execution may claim again (an activity
    runs at least once); another is refused.
    """
    blob = store.name("run-claim")
    try:
        store.container.upload_blob(blob, run_token.encode(), overwrite=False)
        crash_point(RUN_CLAIMED)
        return
    except ResourceExistsError:
        pass
    claimed_by = store.read_bytes(blob).decode()
    if claimed_by != run_token:
        raise LoadAlreadyRan(
            f"the records staged under {store.prefix} were loaded by an earlier run; a load "
            "cannot be restarted: post it again with a new loadId"
        )


def refused_claim(
    claim: LoadClaim | None, now: datetime, load_id: str, instance: str
) -> Problem | None:
    """Why a load id that is claimed but has no orchestration cannot start now, or None
    when the claim was abandoned before its load started and may be taken over."""
    if claim is not None and claim.started:
        return problem(
            409, "LOAD_ID_USED", "Bulk load id already used",
            f"load {load_id!r} ran and its history was purged; a load id loads once, "
            "ever: post the records with a new loadId", instance,
        )
    if claim is None or now - claim.written_at < ABANDONED_CLAIM_AFTER:
        return problem(
            409, "LOAD_STARTING", "Bulk load is being started",
            f"another request is starting load {load_id!r}; post again in a few seconds "
            "to get its status", instance,
        )
    return None


@dataclass(frozen=True)
class ClaimRefusal:
    """What to answer instead of starting the load."""

    problem: Problem
    headers: dict[str, str] | None


def take_over_abandoned_claim(
    service: BlobServiceClient, container: str, load_id: str, instance: str
) -> ClaimRefusal | None:
    """For an id claimed by another request that started no orchestration (being started,
    purged, or its request died): None when this request took the abandoned claim over and
    may start the load, else the refusal to answer."""
    claim = read_load_claim(service, container, load_id)
    refused = refused_claim(claim, datetime.now(UTC), load_id, instance)
    if refused is None and claim is not None and not take_over_load_claim(
            service, container, load_id, claim):
        refused = refused_claim(None, datetime.now(UTC), load_id, instance)
    if refused is None:
        return None
    starting = refused.body["code"] == "LOAD_STARTING"
    return ClaimRefusal(refused, {"Retry-After": "5"} if starting else None)
