"""A claim blob that lets one request start something once, ever, and survives its death.

    claim blob   created (only if absent) by the first request; metadata `fingerprint` (what
                 was posted) and `started` once what it claims started; leased while a
                 request stages and starts it

A request holds the claim's lease (15 s, renewed every 5 s) while it stages and starts. One
that died before (crash, host recycled) stops renewing: once the lease lapsed, the next
request takes the claim over. The caller names the blob and decides what to answer a
request that finds the claim taken (shared/batch/claims.py, shared/bulkload/claims.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient

# Azure's shortest finite lease: how long a claim outlives the request that died holding it.
CLAIM_LEASE_SECONDS = 15
CLAIM_RENEW_SECONDS = 5.0
# Between creating the claim and leasing it, a claim is unleased for an instant: it counts
# as abandoned only once it is older than a lease.
ABANDONED_CLAIM_AFTER = timedelta(seconds=CLAIM_LEASE_SECONDS)
FINGERPRINT_KEY = "fingerprint"
STARTED_KEY = "started"
# How often a started claim looks whether its request still holds the lease.
LEASE_LOOK_SECONDS = 0.1


@dataclass
class ClaimHold:
    """The lease of a claim, held while its request stages and starts what it claims."""

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
        """Record on the claim that what it claims started (its orchestration may be purged
        later), then let the lease go."""
        properties = self.blob.get_blob_properties(lease=self.lease)
        self.blob.set_blob_metadata({**(properties.metadata or {}), STARTED_KEY: "true"},
                                    lease=self.lease)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(HttpResponseError):
            self.lease.release()

    def delete(self) -> None:
        """Undo the claim (nothing was started), so the client can post it again."""
        delete_claim(self.blob, self.lease)


async def renew_until_cancelled(hold: ClaimHold) -> None:
    """Keep the claim's lease while the request stages; the request cancels this task."""
    while True:
        await asyncio.sleep(CLAIM_RENEW_SECONDS)
        await asyncio.to_thread(hold.renew)


@dataclass(frozen=True)
class StoredClaim:
    """A claim as stored: did what it claims start, is a request holding it."""

    started: bool
    written_at: datetime
    leased: bool
    fingerprint: str = ""

    def abandoned(self, now: datetime) -> bool:
        """Its request died before starting what it claims: the claim may be taken over."""
        return not self.started and not self.leased \
            and now - self.written_at >= ABANDONED_CLAIM_AFTER


def take_claim(blob: BlobClient, fingerprint: str) -> ClaimHold | None:
    """Create and lease the claim unless it exists (then None). `fingerprint` identifies
    what was posted (a re-post is compared to it)."""
    try:
        blob.upload_blob(b"", overwrite=False, metadata={FINGERPRINT_KEY: fingerprint})
    except ResourceExistsError:
        return None
    lease = BlobLeaseClient(blob)
    lease.acquire(lease_duration=CLAIM_LEASE_SECONDS)
    return ClaimHold(blob, lease)


def read_claim(blob: BlobClient) -> StoredClaim | None:
    try:
        properties = blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
    metadata = properties.metadata or {}
    return StoredClaim(started=metadata.get(STARTED_KEY) == "true",
                       written_at=properties.last_modified,
                       leased=properties.lease.state == "leased",
                       fingerprint=metadata.get(FINGERPRINT_KEY, ""))


def take_over_claim(blob: BlobClient, fingerprint: str) -> ClaimHold | None:
    """Lease a claim whose request died before starting what it claims; one taker wins."""
    lease = BlobLeaseClient(blob)
    try:
        lease.acquire(lease_duration=CLAIM_LEASE_SECONDS)
    except (ResourceExistsError, ResourceNotFoundError, HttpResponseError):
        return None
    hold = ClaimHold(blob, lease)
    claim = read_claim(blob)
    if claim is None or claim.started:  # started just before its lease was let go
        hold.release()
        return None
    # Rewritten under the lease: the claim is young again and carries this request's input.
    blob.upload_blob(b"", overwrite=True, lease=lease, metadata={FINGERPRINT_KEY: fingerprint})
    return hold


def mark_started_unheld(blob: BlobClient) -> None:
    """From what the claim started: the claim is started, whatever its request did.

    The request may have died between starting and marking the claim (the host then sends
    the lost start again): unmarked, the id could be taken over and its records loaded
    twice. A request still holding the lease marks the claim itself a moment later, or died
    and its lease lapses within a lease's length: wait for that, as a write without the
    lease is refused while it is held.
    """
    deadline = time.monotonic() + CLAIM_LEASE_SECONDS + 1
    while True:
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError:
            return
        metadata = properties.metadata or {}
        if metadata.get(STARTED_KEY) == "true":
            return
        if properties.lease.state != "leased":
            with contextlib.suppress(HttpResponseError):  # leased or taken meanwhile
                blob.set_blob_metadata({**metadata, STARTED_KEY: "true"},
                                       etag=properties.etag,
                                       match_condition=MatchConditions.IfNotModified)
                return
        if time.monotonic() > deadline:  # what it claims matters more than the mark: go on
            logging.warning("claim %s stayed leased; not marked started", blob.blob_name)
            return
        time.sleep(LEASE_LOOK_SECONDS)


def delete_claim(blob: BlobClient, lease: BlobLeaseClient | None = None) -> None:
    """Undo a claim whose start failed (with its lease while a request holds it)."""
    with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
        blob.delete_blob(lease=lease)
