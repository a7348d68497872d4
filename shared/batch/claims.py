"""An instance id is staged by one request and runs once, ever: a leased claim blob.

    {container}/_claims/{job}/{instance id}   created (only if absent) by the first request
                                              for the id; metadata `fingerprint` (what was
                                              posted) and `started` once its orchestration
                                              started; leased while a request stages it

A request holds the claim's lease (15 s, renewed every 5 s) while it stages the records and
starts the orchestration. One that died before (crash, host recycled) stops renewing: once
the lease lapsed, the next post of the id takes the claim over (the records of the dead
request were never loaded) and the ORDERED_SEQUENTIAL queue stops waiting for it at once
(`claim_alive`). A re-post while the claim is held, or after the instance started, with
other records is refused as INSTANCE_ID_CONFLICT; with the same records as
INSTANCE_STARTING (held: post again shortly) or INSTANCE_ID_USED (started).

`_claims/` cannot be an instance folder: job names start with a letter or digit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient

from shared.problems import Problem, problem

# Azure's shortest finite lease: how long a claim outlives the request that died holding it.
CLAIM_LEASE_SECONDS = 15
CLAIM_RENEW_SECONDS = 5.0
# Between creating the claim and leasing it, a claim is unleased for an instant: it counts
# as abandoned only once it is older than a lease.
ABANDONED_CLAIM_AFTER = timedelta(seconds=CLAIM_LEASE_SECONDS)
FINGERPRINT_KEY = "fingerprint"
STARTED_KEY = "started"


def claim_name(job: str, instance_id: str) -> str:
    return f"_claims/{job}/{instance_id}"


def records_fingerprint(records: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the records in order: tells a re-post of the same input from another."""
    digest = hashlib.sha256(b"records\n")
    for record in records:
        digest.update(json.dumps(record, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class ClaimHold:
    """The lease of an instance id's claim, held while its request stages and starts it."""

    blob: BlobClient
    lease: BlobLeaseClient

    def renew(self) -> None:
        self.lease.renew()

    def still_held(self) -> bool:
        """Renew; False when the lease was lost (it lapsed and another request took over)."""
        try:
            self.lease.renew()
        except HttpResponseError:
            return False
        return True

    def mark_started(self) -> None:
        """Record that the orchestration started, then let the lease go."""
        properties = self.blob.get_blob_properties(lease=self.lease)
        self.blob.set_blob_metadata({**(properties.metadata or {}), STARTED_KEY: "true"},
                                    lease=self.lease)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(HttpResponseError):
            self.lease.release()

    def delete(self) -> None:
        """Undo the claim (nothing was started), so the client can post the id again."""
        with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
            self.blob.delete_blob(lease=self.lease)


@dataclass(frozen=True)
class InstanceClaim:
    """An instance id's claim as stored: did its instance start, is a request holding it."""

    started: bool
    written_at: datetime
    leased: bool
    fingerprint: str = ""

    def abandoned(self, now: datetime) -> bool:
        """Its request died before starting the instance: the id may be taken over."""
        return not self.started and not self.leased \
            and now - self.written_at >= ABANDONED_CLAIM_AFTER


def claim_instance_id(container: ContainerClient, job: str, instance_id: str,
                      fingerprint: str) -> ClaimHold | None:
    """Create and lease the id's claim unless it exists (then None)."""
    blob = container.get_blob_client(claim_name(job, instance_id))
    try:
        blob.upload_blob(b"", overwrite=False, metadata={FINGERPRINT_KEY: fingerprint})
    except ResourceExistsError:
        return None
    lease = BlobLeaseClient(blob)
    lease.acquire(lease_duration=CLAIM_LEASE_SECONDS)
    return ClaimHold(blob, lease)


def read_instance_claim(container: ContainerClient, job: str,
                        instance_id: str) -> InstanceClaim | None:
    try:
        properties = container.get_blob_client(
            claim_name(job, instance_id)).get_blob_properties()
    except ResourceNotFoundError:
        return None
    metadata = properties.metadata or {}
    return InstanceClaim(started=metadata.get(STARTED_KEY) == "true",
                         written_at=properties.last_modified,
                         leased=properties.lease.state == "leased",
                         fingerprint=metadata.get(FINGERPRINT_KEY, ""))


def take_over_instance_claim(container: ContainerClient, job: str, instance_id: str,
                             fingerprint: str) -> ClaimHold | None:
    """Lease a claim whose request died before starting the instance; one taker wins."""
    blob = container.get_blob_client(claim_name(job, instance_id))
    lease = BlobLeaseClient(blob)
    try:
        lease.acquire(lease_duration=CLAIM_LEASE_SECONDS)
    except (ResourceExistsError, ResourceNotFoundError, HttpResponseError):
        return None
    hold = ClaimHold(blob, lease)
    claim = read_instance_claim(container, job, instance_id)
    if claim is None or claim.started:  # started just before its lease was let go
        hold.release()
        return None
    # Rewritten under the lease: the claim is young again and carries this request's input.
    blob.upload_blob(b"", overwrite=True, lease=lease, metadata={FINGERPRINT_KEY: fingerprint})
    return hold


def mark_claim_started(container: ContainerClient, job: str, instance_id: str) -> None:
    """From the running orchestration: its claim is started, whatever its request did (it
    may have died between starting the orchestration and marking the claim)."""
    blob = container.get_blob_client(claim_name(job, instance_id))
    # Still leased by its request, which marks it itself a moment later.
    with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
        properties = blob.get_blob_properties()
        if (properties.metadata or {}).get(STARTED_KEY) != "true":
            blob.set_blob_metadata({**(properties.metadata or {}), STARTED_KEY: "true"})


def claim_alive(claim: InstanceClaim | None) -> bool:
    """Whether a STAGING instance may still start: its request holds the claim, or started
    it. A claim whose lease lapsed without a start will never start by itself."""
    return claim is not None and (claim.started or claim.leased)


def refused_claim(claim: InstanceClaim | None, fingerprint: str, job: str, instance_id: str,
                  now: datetime, instance: str) -> Problem | None:
    """Why a claimed id cannot be staged by this request now, or None when its claim was
    abandoned and may be taken over."""
    if claim is not None and (claim.started or claim.leased) and claim.fingerprint \
            and fingerprint and claim.fingerprint != fingerprint:
        return conflict(job, instance_id, instance)
    if claim is not None and claim.started:
        return used(job, instance_id, instance)
    if claim is None or not claim.abandoned(now):
        return problem(
            409, "INSTANCE_STARTING", "Batch job instance is being started",
            f"another request is staging instance {instance_id!r} of job {job!r}; post "
            f"again in {CLAIM_LEASE_SECONDS} seconds to learn whether it started", instance,
            batchJobInstanceId=instance_id)
    return None


def used(job: str, instance_id: str, instance: str) -> Problem:
    return problem(
        409, "INSTANCE_ID_USED", "Batch job instance id already used",
        f"instance {instance_id!r} of job {job!r} was started before; an instance id runs "
        "once: post with another instanceId (or none for a new one)", instance,
        batchJobInstanceId=instance_id)


def conflict(job: str, instance_id: str, instance: str) -> Problem:
    return problem(
        409, "INSTANCE_ID_CONFLICT", "Batch job instance id used by other records",
        f"instance {instance_id!r} of job {job!r} was posted with other records; post these "
        "records with another instanceId (or none for a new one)", instance,
        batchJobInstanceId=instance_id)


def lapsed_claims(container: ContainerClient, job: str,
                  instance_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Of STAGING instances: (those whose claim is alive, those whose claim lapsed without
    a start). A lapsed one whose orchestration exists nonetheless (its request died right
    after starting it) is for the caller to find: this module knows no durable client."""
    alive: set[str] = set()
    lapsed: set[str] = set()
    for instance_id in instance_ids:
        claim = read_instance_claim(container, job, instance_id)
        (alive if claim_alive(claim) else lapsed).add(instance_id)
    return alive, lapsed
