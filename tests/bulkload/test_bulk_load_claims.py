"""A load id loads once, ever: its claim blob on Azurite, and what a claimed id answers
when no orchestration exists for it (being started, purged, or abandoned)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobServiceClient

from shared.bulkload.claims import (
    ABANDONED_CLAIM_AFTER,
    LoadClaim,
    claim_load_id,
    mark_load_started,
    read_load_claim,
    refused_claim,
    release_load_id,
    take_over_load_claim,
)

CONTAINER = "bulk-load-claims-tests"


def test_a_claim_is_taken_once_marked_started_and_released(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"claim-{uuid.uuid4().hex[:8]}"

    assert read_load_claim(service, CONTAINER, load_id) is None
    assert claim_load_id(service, CONTAINER, load_id) is True
    assert claim_load_id(service, CONTAINER, load_id) is False
    claim = read_load_claim(service, CONTAINER, load_id)
    assert claim is not None and claim.started is False

    mark_load_started(service, CONTAINER, load_id)

    assert read_load_claim(service, CONTAINER, load_id).started is True
    release_load_id(service, CONTAINER, load_id)
    assert read_load_claim(service, CONTAINER, load_id) is None
    assert claim_load_id(service, CONTAINER, load_id) is True


def test_only_one_request_takes_over_an_abandoned_claim(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"claim-{uuid.uuid4().hex[:8]}"
    claim_load_id(service, CONTAINER, load_id)
    seen = read_load_claim(service, CONTAINER, load_id)

    first = take_over_load_claim(service, CONTAINER, load_id, seen)
    second = take_over_load_claim(service, CONTAINER, load_id, seen)

    assert (first, second) == (True, False)
    assert read_load_claim(service, CONTAINER, load_id).etag != seen.etag
    release_load_id(service, CONTAINER, load_id)
    assert take_over_load_claim(service, CONTAINER, load_id, seen) is False


def claim_written(ago: timedelta, started: bool = False) -> tuple[LoadClaim, datetime]:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    return LoadClaim(started=started, written_at=now - ago, etag='"0x1"'), now


def test_a_purged_load_keeps_its_id_used():
    claim, now = claim_written(timedelta(days=3), started=True)

    refused = refused_claim(claim, now, "l-1", "/api/bulk-loads")

    assert (refused.status, refused.body["code"]) == (409, "LOAD_ID_USED")
    assert "new loadId" in refused.body["detail"]


def test_a_recent_claim_is_a_load_being_started_and_an_old_one_is_abandoned():
    young, now = claim_written(ABANDONED_CLAIM_AFTER - timedelta(seconds=1))
    old, _ = claim_written(ABANDONED_CLAIM_AFTER)

    refused = refused_claim(young, now, "l-1", "/api/bulk-loads")

    assert (refused.status, refused.body["code"]) == (409, "LOAD_STARTING")
    assert refused_claim(old, now, "l-1", "/api/bulk-loads") is None
    # Released between the two reads: the next post claims it.
    assert refused_claim(None, now, "l-1", "/api/bulk-loads").body["code"] == "LOAD_STARTING"
