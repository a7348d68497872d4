"""Steps that follow each other as one activity, against Azurite and the simulator: the run
claimed and its first level staged, a level's results read and the next level staged, the
reports written and the summary kept; staging that fails there is left to its own step."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.bulkload import combined_steps, levels
from shared.bulkload import jobs as job_steps
from shared.bulkload import staged as staging
from shared.bulkload.claims import SUMMARY
from shared.bulkload.job_intents import PartJob
from shared.bulkload.messages import JobSnapshot, StageLevelRequest, StopKind, StopReason
from shared.bulkload.store import LoadStore
from shared.bulkload.validation import validate_load_request
from tests.bulkload.test_bulk_load_levels import LOAD, rows_of
from tests.salesforce.client_setup import wait_for_job


def stage_request(request, level):
    return StageLevelRequest("unused", tuple(request.levels), level, 10_000_000)


def load_first_level_and_stage_next(store, sf_client, job_intents, request, load_id):
    """Claim the run and stage level 0, load its part on the simulator, then read its
    results and stage level 1 in the one step under test."""
    begun = combined_steps.claim_and_stage_first(store, load_id, "run-1",
                                                 stage_request(request, 0))
    assert begun.staged is not None
    job = job_steps.submit_part_job(sf_client, job_intents, store, PartJob(load_id, 0, 0),
                                    request.levels[0], begun.staged.parts[0].blob,
                                    datetime.now(UTC))
    ended = JobSnapshot.of(wait_for_job(sf_client, job.id))
    return combined_steps.collect_and_stage_next(
        store, sf_client, request.levels, 0, [ended], begun.staged.columns,
        stage_request(request, 1))


def test_the_execution_that_claims_the_run_stages_its_first_level(store):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)

    first = combined_steps.claim_and_stage_first(store, "load-a", "run-1",
                                                 stage_request(request, 0))
    again = combined_steps.claim_and_stage_first(store, "load-a", "run-1",
                                                 stage_request(request, 0))
    other = combined_steps.claim_and_stage_first(store, "load-a", "run-2",
                                                 stage_request(request, 0))

    assert first.claim.claimed and first.staged is not None
    assert (first.staged.submitted, len(first.staged.parts)) == (3, 1)
    assert again.claim.claimed and again.staged == first.staged  # an activity run twice
    assert not other.claim.claimed and other.staged is None


def test_a_level_that_cannot_be_staged_ahead_is_left_to_its_own_step(store, caplog):
    request = validate_load_request(LOAD)  # its records never staged: nothing to read

    staged = combined_steps.stage_ahead(store, stage_request(request, 0))

    assert staged is None
    assert "level 0 not staged ahead" in caplog.text
    assert not store.exists(store.level_blob(0, "part-0.csv"))


def test_a_levels_results_are_read_and_the_next_level_staged_in_one_step(
    store, sf_client, job_intents
):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)

    collected = load_first_level_and_stage_next(store, sf_client, job_intents, request,
                                                "load-b")

    assert (collected.results.succeeded, collected.results.failed) == (2, 1)
    staged_next = collected.staged_next
    assert staged_next is not None
    # The contacts of the account that failed are orphans; the others carry its id.
    assert (staged_next.submitted, staged_next.orphans) == (2, 2)
    contacts = rows_of(store, staged_next.parts[0].blob)
    id_map = levels.read_id_map(store, 0)
    assert [row["AccountId"] for row in contacts] == [id_map["A1"], id_map["A3"]]


def test_a_child_staged_next_also_gets_the_ids_its_retried_load_inherited(
    store, sf_client, job_intents
):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)
    # A retry inherits the ids of the parents its origin loaded: here the account that fails.
    store.upload_bytes(store.level_blob(0, levels.INHERITED_ID_MAP_FILE),
                       b"externalId,sfId\nA2,001000000000INHRT\n", "text/csv")

    collected = load_first_level_and_stage_next(store, sf_client, job_intents, request,
                                                "load-i")

    staged_next = collected.staged_next
    assert staged_next is not None
    assert (staged_next.submitted, staged_next.orphans) == (4, 0)
    contacts = rows_of(store, staged_next.parts[0].blob)
    assert [row["AccountId"] for row in contacts].count("001000000000INHRT") == 2


def test_the_summary_is_kept_with_the_failures_reports_row_count(store):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)
    # The contacts skipped: the failures report holds them as orphans.
    skip = StopReason(StopKind.LEVEL_FAILED, "level accounts failed")
    combined_steps.stage_ahead(store, StageLevelRequest("unused", tuple(request.levels), 1,
                                                        10_000_000, skip=skip))
    summary = {"loadId": "load-c", "outcome": "succeeded", "failedRecords": None}

    report = combined_steps.write_reports_and_keep_summary(store, 2, "load-c",
                                                           json.dumps(summary))

    kept = json.loads(LoadStore(store.container, "load-c").read_bytes(f"load-c/{SUMMARY}"))
    assert kept == {**summary, "failedRecords": report.rows}
    assert report.rows == len(rows_of(store, report.blob)) == 4


def test_a_level_staged_ahead_has_its_parts_submitted_there(store, sf_client, job_intents):
    request = validate_load_request(LOAD)
    staging.stage_request(store, request)
    submitter = combined_steps.PartSubmitter(sf_client, job_intents, "load-s")

    begun = combined_steps.claim_and_stage_first(store, "load-s", "run-1",
                                                 stage_request(request, 0), submitter)

    assert begun.staged is not None and len(begun.submitted) == len(begun.staged.parts) == 1
    ended = JobSnapshot.of(wait_for_job(sf_client, begun.submitted[0].id))
    assert ended.state == "JobComplete" and ended.processed == 3
    collected = combined_steps.collect_and_stage_next(
        store, sf_client, request.levels, 0, [ended], begun.staged.columns,
        stage_request(request, 1), submitter)
    assert len(collected.submitted_next) == 1
    contacts = JobSnapshot.of(wait_for_job(sf_client, collected.submitted_next[0].id))
    assert (contacts.state, contacts.processed) == ("JobComplete", 2)
    # A retry of the step (the activity ran again) answers the jobs it submitted.
    again = combined_steps.claim_and_stage_first(store, "load-s", "run-1",
                                                 stage_request(request, 0), submitter)
    assert [job.id for job in again.submitted] == [begun.submitted[0].id]
