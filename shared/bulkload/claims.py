"""A load id loads once, ever; a load's staged records are loaded by one execution, ever.

    {container}/{load id}/claim       written by the first request for the id; leased while
                                      that request stages and starts the load; metadata
                                      `started` once its orchestration started
    {container}/{load id}/run-claim   the execution loading the id's records (its token and
                                      run folder)
    {container}/{load id}/summary.json  the summary of that execution, once it ended

The Durable backend refuses a second start only while the first runs; after it ended, a
start would replace it, and its restart API starts a new execution over the same input:
either would send every record again. These blobs refuse both, and keep the summary of the
execution that loaded the records for the restarts that replace it.

A request holds its claim's lease (15 s, renewed every 5 s; shared/storage/leased_claim.py)
until the load started. A request that died before (crash, host recycled) stops renewing:
once the lease lapsed, the next post of the id takes the claim over and starts the load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

from shared.bulkload.load_events import log_load_ended
from shared.bulkload.store import LoadStore
from shared.crash_points import crash_point
from shared.problems import Problem, problem
from shared.storage.leased_claim import (
    CLAIM_LEASE_SECONDS,
    ClaimHold,
    StoredClaim,
    delete_claim,
    mark_started_unheld,
    read_claim,
    take_claim,
    take_over_claim,
)

RUN_CLAIM = "run-claim"
SUMMARY = "summary.json"
# bulk_load_claim_run: the run claim is written, the activity's result is not recorded.
RUN_CLAIMED = "bulkload.claim_run.after_claim"

# The claim of a load id as stored: did its load start, is a request holding it.
LoadClaim = StoredClaim


def _claim_blob(service: BlobServiceClient, container: str, load_id: str) -> BlobClient:
    return service.get_container_client(container).get_blob_client(f"{load_id}/claim")


def claim_load_id(
    service: BlobServiceClient, container: str, load_id: str, fingerprint: str = ""
) -> ClaimHold | None:
    """Create and lease `{load id}/claim` unless it exists: only the first request for an id
    starts it. `fingerprint` identifies the posted records (a re-post is compared to it)."""
    store = LoadStore(service.get_container_client(container), load_id)
    store.ensure_container()
    return take_claim(_claim_blob(service, container, load_id), fingerprint)


def read_load_claim(service: BlobServiceClient, container: str, load_id: str) -> LoadClaim | None:
    return read_claim(_claim_blob(service, container, load_id))


def take_over_load_claim(
    service: BlobServiceClient, container: str, load_id: str, fingerprint: str = ""
) -> ClaimHold | None:
    """Lease a claim whose request died before starting its load; only one taker wins."""
    return take_over_claim(_claim_blob(service, container, load_id), fingerprint)


def release_load_id(service: BlobServiceClient, container: str, load_id: str,
                    hold: ClaimHold | None = None) -> None:
    """Undo a claim whose load could not be started, so the client can post it again."""
    delete_claim(_claim_blob(service, container, load_id),
                 hold.lease if hold is not None else None)


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
    if claim is None or not claim.abandoned(now):
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
    service: BlobServiceClient, container: str, load_id: str, instance: str,
    fingerprint: str = "", fingerprint_decides: bool = True,
) -> ClaimHold | ClaimRefusal:
    """For an id claimed by another request that started no orchestration (being started,
    purged, or its request died): the claim's lease when this request took the abandoned
    claim over and may start the load, else the refusal to answer. Without
    `fingerprint_decides` (a digest of the body's bytes: other bytes may hold the same
    records), another fingerprint while the claim is held answers that the load is being
    started, and the post after it is compared with the started load's records."""
    claim = read_load_claim(service, container, load_id)
    if fingerprint_decides and claim is not None and not claim.started \
            and claim.fingerprint and fingerprint and claim.fingerprint != fingerprint \
            and claim.leased:
        return ClaimRefusal(problem(
            409, "LOAD_ID_CONFLICT", "Bulk load id used by other records",
            f"another request is starting load {load_id!r} with other records; post these "
            "records with a new loadId", instance), None)
    refused = refused_claim(claim, datetime.now(UTC), load_id, instance)
    if refused is None:
        hold = take_over_load_claim(service, container, load_id, fingerprint)
        if hold is not None:
            return hold
        refused = refused_claim(None, datetime.now(UTC), load_id, instance)
    assert refused is not None
    starting = refused.body["code"] == "LOAD_STARTING"
    return ClaimRefusal(refused, {"Retry-After": str(CLAIM_LEASE_SECONDS)} if starting
                        else None)


def mark_load_started(container: ContainerClient, load_id: str) -> None:
    """From the running orchestration: its claim is started, whatever its request did (it
    may have died between starting the orchestration and marking the claim)."""
    mark_started_unheld(container.get_blob_client(f"{load_id}/claim"))


# -- the execution that loads the records ---------------------------------------------------


@dataclass(frozen=True)
class RunClaim:
    """Whether this execution loads the records; if not, the summary of the one that did."""

    claimed: bool
    earlier_summary: str | None = None


def claim_load_run(store: LoadStore, load_id: str, run_token: str) -> RunClaim:
    """Let one orchestration execution load a load id's records, ever.

    The first execution writes its token; the same execution may claim again (an activity
    runs at least once); another (a restart, a start that replaced an ended load) is
    refused and gets the summary the first one wrote, if it wrote one. The execution that
    claims the records marks the load id's claim started.
    """
    root = LoadStore(store.container, load_id)
    blob = root.name(RUN_CLAIM)
    token = json.dumps({"token": run_token, "run": store.prefix}).encode()
    try:
        store.container.upload_blob(blob, token, overwrite=False)
        crash_point(RUN_CLAIMED)
        mark_load_started(store.container, load_id)
        return RunClaim(True)
    except ResourceExistsError:
        pass
    if json.loads(root.read_bytes(blob))["token"] == run_token:
        mark_load_started(store.container, load_id)
        return RunClaim(True)
    try:
        summary = root.read_bytes(root.name(SUMMARY)).decode()
    except ResourceNotFoundError:
        summary = None
    return RunClaim(False, summary)


def keep_summary(store: LoadStore, load_id: str, summary: str) -> None:
    """Keep the summary of the execution that loaded the records, for later executions."""
    root = LoadStore(store.container, load_id)
    root.upload_bytes(root.name(SUMMARY), summary.encode(), "application/json")
    log_load_ended(load_id, summary)
