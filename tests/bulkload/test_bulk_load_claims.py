"""A load id loads once, ever: its claim blob and lease on Azurite, what a claimed id
answers when no orchestration exists for it (being started, purged, or abandoned), and the
run claim that lets one execution load the records."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobServiceClient

from shared.bulkload.claims import (
    LoadClaim,
    claim_load_id,
    claim_load_run,
    keep_summary,
    read_load_claim,
    refused_claim,
    release_load_id,
    take_over_abandoned_claim,
    take_over_load_claim,
)
from shared.bulkload.store import LoadStore
from shared.storage.leased_claim import ABANDONED_CLAIM_AFTER

CONTAINER = "bulk-load-claims-tests"


def test_a_claim_is_taken_once_leased_marked_started_and_released(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"claim-{uuid.uuid4().hex[:8]}"

    assert read_load_claim(service, CONTAINER, load_id) is None
    hold = claim_load_id(service, CONTAINER, load_id, "digest-1")
    assert hold is not None
    assert claim_load_id(service, CONTAINER, load_id, "digest-1") is None
    claim = read_load_claim(service, CONTAINER, load_id)
    assert (claim.started, claim.leased, claim.fingerprint) == (False, True, "digest-1")
    # Held by a live request: nobody takes it over.
    assert take_over_load_claim(service, CONTAINER, load_id) is None

    hold.mark_started()

    claim = read_load_claim(service, CONTAINER, load_id)
    assert (claim.started, claim.leased, claim.fingerprint) == (True, False, "digest-1")
    assert take_over_load_claim(service, CONTAINER, load_id) is None  # started: never again
    release_load_id(service, CONTAINER, load_id)
    assert read_load_claim(service, CONTAINER, load_id) is None
    assert claim_load_id(service, CONTAINER, load_id) is not None


def test_only_one_request_takes_over_a_claim_whose_lease_lapsed(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"claim-{uuid.uuid4().hex[:8]}"
    hold = claim_load_id(service, CONTAINER, load_id, "old")
    hold.lease.break_lease(lease_break_period=0)  # as if its request had died

    first = take_over_load_claim(service, CONTAINER, load_id, "new")
    second = take_over_load_claim(service, CONTAINER, load_id, "new")

    assert first is not None and second is None
    claim = read_load_claim(service, CONTAINER, load_id)
    assert (claim.leased, claim.fingerprint, claim.started) == (True, "new", False)


def claim_written(ago: timedelta, started: bool = False,
                  leased: bool = False) -> tuple[LoadClaim, datetime]:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    return LoadClaim(started=started, written_at=now - ago, leased=leased), now


def test_a_purged_load_keeps_its_id_used():
    claim, now = claim_written(timedelta(days=3), started=True)

    refused = refused_claim(claim, now, "l-1", "/api/bulk-loads")

    assert (refused.status, refused.body["code"]) == (409, "LOAD_ID_USED")
    assert "new loadId" in refused.body["detail"]


def test_a_leased_or_young_claim_is_being_started_an_unleased_old_one_is_abandoned():
    leased, now = claim_written(timedelta(hours=1), leased=True)
    young, _ = claim_written(ABANDONED_CLAIM_AFTER - timedelta(seconds=1))
    old, _ = claim_written(ABANDONED_CLAIM_AFTER)

    for claim in (leased, young):
        refused = refused_claim(claim, now, "l-1", "/api/bulk-loads")
        assert (refused.status, refused.body["code"]) == (409, "LOAD_STARTING")
    assert refused_claim(old, now, "l-1", "/api/bulk-loads") is None
    # Released between the two reads: the next post claims it.
    assert refused_claim(None, now, "l-1", "/api/bulk-loads").body["code"] == "LOAD_STARTING"


def test_one_execution_loads_a_load_id_and_later_ones_get_its_summary(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"run-{uuid.uuid4().hex[:8]}"
    first = LoadStore.for_load(service, CONTAINER, f"{load_id}/run-a")
    second = LoadStore.for_load(service, CONTAINER, f"{load_id}/run-b")
    first.ensure_container()

    assert claim_load_run(first, load_id, "token-1").claimed is True
    assert claim_load_run(first, load_id, "token-1").claimed is True  # an activity repeated
    refused = claim_load_run(second, load_id, "token-2")
    assert (refused.claimed, refused.earlier_summary) == (False, None)
    keep_summary(first, load_id, '{"outcome": "succeeded"}')
    assert claim_load_run(first, load_id, "token-3").earlier_summary == \
        '{"outcome": "succeeded"}'


def test_the_execution_that_claims_the_records_marks_a_claim_its_request_left_unmarked(
    azurite,
):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"run-{uuid.uuid4().hex[:8]}"
    hold = claim_load_id(service, CONTAINER, load_id, "digest")
    assert hold is not None
    # The request started the orchestration and died before marking the claim: its lease
    # lapses (broken here at once instead of after 15 s).
    hold.lease.break_lease(lease_break_period=0)

    claimed = claim_load_run(LoadStore.for_load(service, CONTAINER, f"{load_id}/run-a"),
                             load_id, "token-1")

    claim = read_load_claim(service, CONTAINER, load_id)
    assert claimed.claimed is True
    assert (claim.started, claim.fingerprint) == (True, "digest")
    assert take_over_load_claim(service, CONTAINER, load_id) is None


def test_the_run_claim_waits_for_a_request_still_holding_the_claim(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"run-{uuid.uuid4().hex[:8]}"
    hold = claim_load_id(service, CONTAINER, load_id, "digest")
    assert hold is not None
    store = LoadStore.for_load(service, CONTAINER, f"{load_id}/run-a")

    with ThreadPoolExecutor(1) as pool:
        claimed = pool.submit(claim_load_run, store, load_id, "token-1")
        hold.mark_started()  # the request marks its claim and lets the lease go
        assert claimed.result().claimed is True

    claim = read_load_claim(service, CONTAINER, load_id)
    assert (claim.started, claim.leased) == (True, False)


def test_a_body_digest_that_differs_while_the_claim_is_held_says_the_load_is_starting(
    azurite
):
    """Other bytes may hold the same records: the post after the start is compared with
    them; a fingerprint of the records decides at once."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    load_id = f"claim-{uuid.uuid4().hex[:8]}"
    hold = claim_load_id(service, CONTAINER, load_id, "bytes-1")
    assert hold is not None

    by_bytes = take_over_abandoned_claim(service, CONTAINER, load_id, "/api/bulk-loads",
                                         "bytes-2", fingerprint_decides=False)
    by_records = take_over_abandoned_claim(service, CONTAINER, load_id, "/api/bulk-loads",
                                           "records-2")

    assert by_bytes.problem.body["code"] == "LOAD_STARTING"
    assert by_bytes.headers == {"Retry-After": "15"}
    assert by_records.problem.body["code"] == "LOAD_ID_CONFLICT"
    hold.release()
