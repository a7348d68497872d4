"""An instance id is staged by one request and runs once, ever: a leased claim blob.

    {container}/_claims/{job}/{instance id}   created (only if absent) by the first request
                                              for the id; metadata `fingerprint` (what was
                                              posted) and `started` once its orchestration
                                              started; leased while a request stages it

A request holds the claim's lease (15 s, renewed every 5 s; shared/storage/leased_claim.py)
while it stages the records and starts the orchestration. One that died before (crash, host
recycled) stops renewing: once the lease lapsed, the next post of the id takes the claim
over (the records of the dead request were never loaded) and the ORDERED_SEQUENTIAL queue
stops waiting for it at once (`claim_alive`). A re-post while the claim is held, or after
the instance started, with other records is refused as INSTANCE_ID_CONFLICT; with the same
records as INSTANCE_STARTING (held: post again shortly) or INSTANCE_ID_USED (started).

`_claims/` cannot be an instance folder: job names start with a letter or digit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from azure.storage.blob import ContainerClient

from shared.problems import Problem, problem
from shared.storage.leased_claim import (
    CLAIM_LEASE_SECONDS,
    ClaimHold,
    StoredClaim,
    mark_started_unheld,
    read_claim,
    take_claim,
    take_over_claim,
)

# An instance id's claim as stored: did its instance start, is a request holding it.
InstanceClaim = StoredClaim


def claim_name(job: str, instance_id: str) -> str:
    return f"_claims/{job}/{instance_id}"


def records_fingerprint(records: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the records in order: tells a re-post of the same input from another."""
    digest = hashlib.sha256(b"records\n")
    for record in records:
        digest.update(json.dumps(record, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def claim_instance_id(container: ContainerClient, job: str, instance_id: str,
                      fingerprint: str) -> ClaimHold | None:
    """Create and lease the id's claim unless it exists (then None)."""
    return take_claim(container.get_blob_client(claim_name(job, instance_id)), fingerprint)


def read_instance_claim(container: ContainerClient, job: str,
                        instance_id: str) -> InstanceClaim | None:
    return read_claim(container.get_blob_client(claim_name(job, instance_id)))


def take_over_instance_claim(container: ContainerClient, job: str, instance_id: str,
                             fingerprint: str) -> ClaimHold | None:
    """Lease a claim whose request died before starting the instance; one taker wins."""
    return take_over_claim(container.get_blob_client(claim_name(job, instance_id)),
                           fingerprint)


def mark_claim_started(container: ContainerClient, job: str, instance_id: str) -> None:
    """From the running orchestration: its claim is started, whatever its request did (it
    may have died between starting the orchestration and marking the claim)."""
    mark_started_unheld(container.get_blob_client(claim_name(job, instance_id)))


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
