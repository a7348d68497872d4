"""The bulk_load orchestrator's decisions, replayed through the real Durable SDK: which
activities and timers it asks for, and what it keeps in history (no I/O here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.bulkload.messages import LoadInput
from shared.bulkload.request import LoadLevel
from tests.replay_driver import ActivityFailed, Replay, orchestrator_function
from tests.replay_driver import replay as replay_orchestration

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
LEVELS = [
    {"name": "accounts", "object": "Account", "operation": "upsert",
     "external_id_field": "External_Id__c", "parent": None, "parent_reference_field": None},
    {"name": "contacts", "object": "Contact", "operation": "insert", "external_id_field": None,
     "parent": 0, "parent_reference_field": "AccountId"},
]


@pytest.fixture(scope="module")
def orchestrator():
    with orchestrator_function("orchestrators.bulk_load.orchestration", "bulk_load") as function:
        yield function


def replay(orchestrator, load, respond, start, **options) -> Replay:
    """The load replayed as its starter starts it: instance id = load id."""
    return replay_orchestration(orchestrator, load, respond, start, orchestration="bulk_load",
                                instance_id=load["load_id"], **options)


def load_input(records=(2, 3), poll_interval=10.0, max_wait=600.0, first_poll_delay=None,
               prepare_children=True, combined_steps=False, submit_ahead=False,
               body_digest=None, predicted_polls=False):
    """A load's input; without `combined_steps` as an earlier version started it, each step
    its own activity (those loads must still replay; the tests at the end of this module
    run the combined steps of a load started now)."""
    return LoadInput("load-1", "load-1/run", tuple(LoadLevel.from_json(level) for level in LEVELS),
                     tuple(records), poll_interval=poll_interval, max_wait=max_wait,
                     upload_limit=100_000_000, activity_attempts=3,
                     activity_retry_delay=5.0,
                     first_poll_delay=first_poll_delay or poll_interval,
                     prepare_children=prepare_children,
                     combined_steps=combined_steps, submit_ahead=submit_ahead,
                     body_digest=body_digest, predicted_polls=predicted_polls).to_json()


class FakeOrg:
    """Answers activities as Salesforce and the staging steps would, from a script."""

    def __init__(self, polls_until_done=2, final_state="JobComplete", error=None,
                 parts=1, records=(2, 3), failing=None, earlier_summary=None,
                 stage_ahead=True, submit_ahead_parts=10**6):
        self.failing = failing or {}
        self.submit_ahead_parts = submit_ahead_parts  # fewer: the others could not be
        self.stage_ahead = stage_ahead  # False: a level staged ahead could not be
        self.earlier_summary = earlier_summary
        self.polls_until_done = polls_until_done
        self.final_state = final_state
        self.error = error
        self.parts = parts
        self.records = records
        self.polls: dict[str, int] = {}
        self.jobs = 0

    def submitted(self, load_id, staged):
        """The jobs of a level's parts submitted ahead: the first `submit_ahead_parts`."""
        if load_id is None or staged is None:
            return []
        jobs = []
        for _ in staged["parts"][:self.submit_ahead_parts]:
            self.jobs += 1
            jobs.append(self.job(f"750J{self.jobs}", "UploadComplete"))
        return jobs

    def job(self, job_id, state):
        return {"id": job_id, "state": state, "processed": 0, "failed": 0,
                "error_message": self.error if state == "Failed" else None}

    def __call__(self, name, request, now):
        if name in self.failing and self.failing[name](request):
            raise ActivityFailed(f"{name} could not reach storage")
        if name == "bulk_load_claim_and_stage":
            claim = self(name.replace("_and_stage", "_run"), request["claim"], now)
            staged = (self("bulk_load_stage_level", request["stage"], now)
                      if claim["claimed"] and self.stage_ahead else None)
            return {"claim": claim, "staged": staged,
                    "submitted": self.submitted(request.get("submit_load_id"), staged)}
        if name == "bulk_load_submit_part":
            self.jobs += 1
            return self.job(f"750J{self.jobs}", "UploadComplete")
        if name == "bulk_load_collect_and_stage":
            results = self("bulk_load_collect_results", request["collect"], now)
            staged = (self("bulk_load_stage_level", request["stage_next"], now)
                      if request["stage_next"] and self.stage_ahead else None)
            return {"results": results, "staged_next": staged,
                    "submitted_next": self.submitted(request.get("submit_load_id"), staged)}
        if name == "bulk_load_finish":
            return {"blob": "load-1/run/failures.csv", "rows": 1}
        if name == "bulk_load_claim_run":
            if self.earlier_summary is not None:
                return {"claimed": False, "earlier_summary": json.dumps(self.earlier_summary)}
            return {"claimed": True, "earlier_summary": None}
        if name == "bulk_load_stage_level":
            count = self.records[request["level"]]
            if request["skip"]:
                return {"parts": [], "submitted": 0, "orphans": count, "columns": ["Name"]}
            return {"parts": [{"blob": f"p/{request['level']}/part-{k}.csv", "records": 1,
                               "size_bytes": 10} for k in range(self.parts)],
                    "submitted": count, "orphans": 0, "columns": ["Name"]}
        if name == "bulk_load_create_job":
            self.jobs += 1
            return self.job(f"750J{self.jobs}", "Open")
        if name == "bulk_load_upload_part":
            return self.job(request["job_id"], "UploadComplete")
        if name == "bulk_load_poll_jobs":
            answers = []
            for job_id in request["job_ids"]:
                self.polls[job_id] = self.polls.get(job_id, 0) + 1
                done = self.polls[job_id] >= self.polls_until_done
                answers.append(self.job(job_id, self.final_state if done else "InProgress"))
            return {"jobs": answers}
        if name == "bulk_load_abort_jobs":
            return {"jobs": [self.job(job_id, "Aborted") for job_id in request["job_ids"]]}
        if name == "bulk_load_collect_results":
            failed = sum(1 for job in request["jobs"] if job["state"] != "JobComplete")
            return {"succeeded": self.records[request["level"]] if not failed else 0,
                    "failed": 0, "unprocessed": 0, "failed_by_error": {}}
        if name == "bulk_load_report_level_failure":
            count = self.records[request["level"]]
            return {"succeeded": 0, "failed": count, "unprocessed": 0,
                    "failed_by_error": {request["error"]["code"]: count}}
        if name == "bulk_load_write_reports":
            return {"blob": "load-1/run/failures.csv", "rows": 0}
        if name in ("bulk_load_keep_summary", "bulk_load_prepare_level"):
            return None
        raise AssertionError(f"unexpected activity {name}")


def test_levels_run_in_order_and_jobs_are_polled_on_durable_timers(orchestrator):
    run = replay(orchestrator, load_input(), FakeOrg(polls_until_done=3), START)

    names = [name for name, _ in run.calls]
    assert names == [
        "bulk_load_claim_run",
        "bulk_load_stage_level", "bulk_load_create_job", "bulk_load_upload_part",
        "bulk_load_prepare_level",  # the contacts, while the accounts' job runs
        *["bulk_load_poll_jobs"] * 3, "bulk_load_collect_results",
        "bulk_load_stage_level", "bulk_load_create_job", "bulk_load_upload_part",
        *["bulk_load_poll_jobs"] * 3, "bulk_load_collect_results",
        "bulk_load_write_reports", "bulk_load_keep_summary",
    ]
    assert run.timers == [START + timedelta(seconds=10 * n) for n in (1, 2, 3, 4, 5, 6)]
    assert [request["level"] for request in run.called("bulk_load_stage_level")] == [0, 1]
    # A load started without the body's digest: its body is validated again when prepared.
    assert run.called("bulk_load_prepare_level") == [
        {"prefix": "load-1/run", "level": 1, "body_digest": None}]
    summary = run.output
    assert summary["outcome"] == "succeeded"
    assert [level["jobs"] for level in summary["levels"]] == [["750J1"], ["750J2"]]
    assert [level["elapsedSeconds"] for level in summary["levels"]] == [30.0, 30.0]
    waiting = [status for status in run.statuses if status and status["phase"] == "waiting"]
    assert waiting[0]["level"] == "accounts" and waiting[0]["jobs"][0]["id"] == "750J1"
    assert waiting[-1]["level"] == "contacts"
    assert all(len(json.dumps(status)) <= 16_000 for status in run.statuses)


def test_a_child_level_that_could_not_be_prepared_is_staged_from_its_records(orchestrator):
    failing = {"bulk_load_prepare_level": lambda request: True}
    run = replay(orchestrator, load_input(), FakeOrg(polls_until_done=2, failing=failing),
                 START)

    assert run.failures == [("bulk_load_prepare_level", 1)]  # tried once, never retried
    assert [request["level"] for request in run.called("bulk_load_stage_level")] == [0, 1]
    assert run.output["outcome"] == "succeeded"
    assert run.timers == [START + timedelta(seconds=10 * n) for n in (1, 2, 3, 4)]


def test_a_load_started_by_the_earlier_version_replays_without_preparing(orchestrator):
    run = replay(orchestrator, load_input(prepare_children=False),
                 FakeOrg(polls_until_done=2), START)

    assert run.called("bulk_load_prepare_level") == []
    assert run.output["outcome"] == "succeeded"


def test_a_level_above_the_upload_limit_gets_one_job_per_part(orchestrator):
    run = replay(orchestrator, load_input(), FakeOrg(parts=3, polls_until_done=1), START)

    uploads = run.called("bulk_load_upload_part")
    assert [upload["blob"] for upload in uploads[:3]] == [
        "p/0/part-0.csv", "p/0/part-1.csv", "p/0/part-2.csv"]
    assert len({upload["job_id"] for upload in uploads}) == 6
    assert [len(poll["job_ids"]) for poll in run.called("bulk_load_poll_jobs")] == [3, 3]


def test_a_stalled_job_is_aborted_at_max_wait_and_later_levels_are_skipped(orchestrator):
    run = replay(orchestrator, load_input(poll_interval=10, max_wait=25),
                 FakeOrg(polls_until_done=10**6), START)

    assert run.timers == [START + timedelta(seconds=s) for s in (10, 20, 25)]
    assert run.called("bulk_load_abort_jobs") == [{"job_ids": ["750J1"]}]
    accounts, contacts = run.output["levels"]
    assert accounts["state"] == "failed"
    assert accounts["error"] == "job 750J1 did not finish within 25 s and was aborted"
    assert accounts["errorCode"] == "JOB_STALLED"
    skipped = run.called("bulk_load_stage_level")[1]
    assert skipped["skip"]["kind"] == "LEVEL_FAILED"
    assert skipped["skip"]["message"].startswith("level accounts failed: JOB_STALLED:job 750J1")
    assert contacts["errorCode"] == "LEVEL_FAILED"
    assert contacts["error"].startswith("level accounts failed: JOB_STALLED:job 750J1")
    assert contacts["state"] == "skipped" and contacts["orphansSkipped"] == 3
    assert run.called("bulk_load_create_job") == [
        {"level": LEVELS[0], "load_id": "load-1", "level_index": 0, "part": 0}]
    assert run.output["outcome"] == "failed"


def test_a_failed_job_fails_its_level_with_salesforces_error_message(orchestrator):
    run = replay(orchestrator, load_input(),
                 FakeOrg(polls_until_done=1, final_state="Failed",
                         error="InvalidBatch : Field name not found : Foo"), START)

    accounts, contacts = run.output["levels"]
    assert accounts["error"] == "job 750J1 ended Failed: InvalidBatch : Field name not found : Foo"
    assert accounts["errorCode"] == "JOB_FAILED"
    assert contacts["state"] == "skipped"
    assert len(run.called("bulk_load_create_job")) == 1


def test_history_does_not_grow_with_the_number_of_records(orchestrator):
    small = replay(orchestrator, load_input(records=(1_000, 3_000)),
                   FakeOrg(records=(1_000, 3_000)), START)
    large = replay(orchestrator, load_input(records=(10_000, 30_000)),
                   FakeOrg(records=(10_000, 30_000)), START)

    assert abs(large.history_bytes - small.history_bytes) <= 20
    assert large.history_bytes < 20_000


def test_an_activity_out_of_retries_fails_its_level_and_skips_the_rest(orchestrator):
    org = FakeOrg(polls_until_done=1, failing={
        "bulk_load_collect_results": lambda request: request["level"] == 0})

    run = replay(orchestrator, load_input(), org, START)

    assert run.failures == [("bulk_load_collect_results", 3)]
    accounts, contacts = run.output["levels"]
    assert accounts["state"] == "failed"
    # One line with a code: never the serialized exception and its stack trace.
    assert (accounts["errorCode"], accounts["error"]) == (
        "RESULTS_UNAVAILABLE", "reading the jobs' results failed after 3 tries: "
        "ActivityFailed: bulk_load_collect_results could not reach storage")
    assert accounts["jobs"] == ["750J1"] and accounts["submitted"] == 2
    # The level's own records are reported failed with that error.
    reported = run.called("bulk_load_report_level_failure")
    assert [(r["level"], r["error"]["code"]) for r in reported] == [(0, "RESULTS_UNAVAILABLE")]
    assert (accounts["failed"], accounts["failedByError"]) == (2, {"RESULTS_UNAVAILABLE": 2})
    assert contacts["state"] == "skipped"
    assert contacts["errorCode"] == "LEVEL_FAILED"
    assert contacts["error"].startswith("level accounts failed: RESULTS_UNAVAILABLE:")
    skip = run.called("bulk_load_stage_level")[1]["skip"]
    assert (skip["kind"], skip["message"]) == (contacts["errorCode"], contacts["error"])
    assert "Traceback" not in json.dumps(run.output)
    assert len(run.called("bulk_load_create_job")) == 1
    # The failure report is still written, and the output says how the load ended.
    assert len(run.called("bulk_load_write_reports")) == 1
    assert run.output["outcome"] == "failed"


def test_a_failure_report_that_cannot_be_written_leaves_the_summary_intact(orchestrator):
    org = FakeOrg(polls_until_done=1, failing={"bulk_load_write_reports": lambda _: True})

    run = replay(orchestrator, load_input(), org, START)

    assert run.failures == [("bulk_load_write_reports", 3)]
    assert run.output["outcome"] == "succeeded"
    assert run.output["failedRecords"] is None
    assert [level["succeeded"] for level in run.output["levels"]] == [2, 3]


def test_a_cancel_request_aborts_the_running_jobs_and_skips_the_remaining_levels(orchestrator):
    second_poll = START + timedelta(seconds=20)
    run = replay(orchestrator, load_input(), FakeOrg(polls_until_done=10**6), START,
                 raise_before=lambda fire_at: [("cancel", {"reason": "wrong file"})]
                 if fire_at == second_poll else [])

    assert run.timers == [START + timedelta(seconds=10), second_poll]
    assert run.called("bulk_load_abort_jobs") == [{"job_ids": ["750J1"]}]
    assert run.called("bulk_load_create_job") == [
        {"level": LEVELS[0], "load_id": "load-1", "level_index": 0, "part": 0}]
    accounts, contacts = run.output["levels"]
    assert (accounts["state"], accounts["error"]) == ("cancelled", "cancelled: wrong file")
    skipped = run.called("bulk_load_stage_level")[1]
    assert skipped["skip"] == {"kind": "CANCELLED", "message": "load cancelled: wrong file"}
    assert (contacts["errorCode"], contacts["error"]) == ("CANCELLED",
                                                          "load cancelled: wrong file")
    assert contacts["state"] == "skipped" and contacts["orphansSkipped"] == 3
    assert (run.output["outcome"], run.output["cancelReason"]) == ("cancelled", "wrong file")
    assert any(status and status.get("phase") == "cancelling" for status in run.statuses)


def test_a_cancel_raised_while_a_level_was_staging_takes_effect_at_the_first_poll(
    orchestrator,
):
    run = replay(orchestrator, load_input(), FakeOrg(polls_until_done=10**6), START,
                 raise_before=lambda fire_at: [("cancel", {})])

    assert run.timers == [START + timedelta(seconds=10)]
    assert run.output["cancelReason"] == "no reason given"
    assert run.output["levels"][0]["state"] == "cancelled"


def test_the_first_poll_comes_soon_after_the_close_then_polls_back_off_to_the_interval(
    orchestrator,
):
    run = replay(orchestrator, load_input(poll_interval=10.0, first_poll_delay=0.5),
                 FakeOrg(polls_until_done=7, records=(2, 0)), START)

    waits = [(later - earlier).total_seconds()
             for earlier, later in zip([START, *run.timers], run.timers[:7], strict=False)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_restart_of_a_load_that_ran_answers_its_summary_and_loads_nothing(orchestrator):
    earlier = {"loadId": "load-1", "outcome": "succeeded", "levels": []}

    run = replay(orchestrator, load_input(), FakeOrg(earlier_summary=earlier), START)

    assert [name for name, _ in run.calls] == ["bulk_load_claim_run"]
    assert run.failures == []
    assert run.output == earlier
    assert run.statuses[-1]["phase"] == "completed"


# -- a load started now: steps that follow each other run as one activity -----------------


def test_combined_steps_run_a_level_in_fewer_activities(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True), FakeOrg(polls_until_done=3),
                 START)

    assert [name for name, _ in run.calls] == [
        "bulk_load_claim_and_stage",  # the run claimed, the accounts staged
        "bulk_load_submit_part",  # created, uploaded and closed
        "bulk_load_prepare_level",
        *["bulk_load_poll_jobs"] * 3,
        "bulk_load_collect_and_stage",  # the accounts' results, the contacts staged
        "bulk_load_submit_part",
        *["bulk_load_poll_jobs"] * 3,
        "bulk_load_collect_and_stage",  # the contacts' results, nothing after them
        "bulk_load_finish",  # the reports written, the summary kept
    ]
    assert run.called("bulk_load_claim_and_stage")[0]["stage"]["level"] == 0
    assert run.called("bulk_load_submit_part") == [
        {"level": LEVELS[0], "load_id": "load-1", "level_index": 0, "part": 0,
         "prefix": "load-1/run", "blob": "p/0/part-0.csv"},
        {"level": LEVELS[1], "load_id": "load-1", "level_index": 1, "part": 0,
         "prefix": "load-1/run", "blob": "p/1/part-0.csv"}]
    collects = run.called("bulk_load_collect_and_stage")
    assert [c["collect"]["level"] for c in collects] == [0, 1]
    assert collects[0]["stage_next"]["level"] == 1 and collects[0]["stage_next"]["skip"] is None
    assert collects[1]["stage_next"] is None
    assert run.timers == [START + timedelta(seconds=10 * n) for n in (1, 2, 3, 4, 5, 6)]
    summary = run.output
    assert (summary["outcome"], summary["failedRecords"]) == ("succeeded", 1)
    assert [level["jobs"] for level in summary["levels"]] == [["750J1"], ["750J2"]]
    assert [level["succeeded"] for level in summary["levels"]] == [2, 3]
    finish = run.called("bulk_load_finish")[0]
    assert json.loads(finish["summary"])["levels"] == summary["levels"]
    assert run.statuses[-1]["phase"] == "completed"


def test_a_level_that_could_not_be_staged_ahead_is_staged_by_its_own_step(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True),
                 FakeOrg(polls_until_done=1, stage_ahead=False), START)

    staged = run.called("bulk_load_stage_level")
    assert [(request["level"], request["skip"]) for request in staged] == [(0, None),
                                                                          (1, None)]
    assert run.output["outcome"] == "succeeded"
    assert [level["submitted"] for level in run.output["levels"]] == [2, 3]


def test_combined_steps_stage_no_level_after_a_failed_one(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True),
                 FakeOrg(polls_until_done=1, final_state="Failed", error="InvalidBatch : x"),
                 START)

    assert run.called("bulk_load_collect_and_stage")[0]["stage_next"] is None
    skipped = run.called("bulk_load_stage_level")
    assert [(request["level"], request["skip"]["kind"]) for request in skipped] == [
        (1, "LEVEL_FAILED")]
    accounts, contacts = run.output["levels"]
    assert accounts["errorCode"] == "JOB_FAILED" and contacts["state"] == "skipped"
    assert len(run.called("bulk_load_submit_part")) == 1


def test_combined_steps_stage_no_level_after_a_cancel(orchestrator):
    second_poll = START + timedelta(seconds=20)
    run = replay(orchestrator, load_input(combined_steps=True),
                 FakeOrg(polls_until_done=10**6), START,
                 raise_before=lambda fire_at: [("cancel", {"reason": "wrong file"})]
                 if fire_at == second_poll else [])

    assert run.called("bulk_load_abort_jobs") == [{"job_ids": ["750J1"]}]
    assert [c["stage_next"] for c in run.called("bulk_load_collect_and_stage")] == [None]
    assert run.called("bulk_load_stage_level")[0]["skip"]["kind"] == "CANCELLED"
    assert run.output["levels"][1]["state"] == "skipped"
    assert run.output["outcome"] == "cancelled"


def test_a_summary_whose_reports_cannot_be_written_is_kept_alone(orchestrator):
    org = FakeOrg(polls_until_done=1, failing={"bulk_load_finish": lambda _: True})

    run = replay(orchestrator, load_input(combined_steps=True), org, START)

    assert run.failures == [("bulk_load_finish", 3)]
    kept = run.called("bulk_load_keep_summary")
    assert len(kept) == 1 and json.loads(kept[0]["summary"]) == run.output
    assert (run.output["outcome"], run.output["failedRecords"]) == ("succeeded", None)


def test_a_part_per_job_submitted_in_one_activity_each(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True),
                 FakeOrg(parts=3, polls_until_done=1), START)

    submitted = run.called("bulk_load_submit_part")
    assert [(s["level_index"], s["part"], s["blob"]) for s in submitted[:3]] == [
        (0, 0, "p/0/part-0.csv"), (0, 1, "p/0/part-1.csv"), (0, 2, "p/0/part-2.csv")]
    assert [len(poll["job_ids"]) for poll in run.called("bulk_load_poll_jobs")] == [3, 3]


def test_a_restart_with_combined_steps_stages_nothing(orchestrator):
    earlier = {"loadId": "load-1", "outcome": "succeeded", "levels": []}

    run = replay(orchestrator, load_input(combined_steps=True),
                 FakeOrg(earlier_summary=earlier), START)

    assert [name for name, _ in run.calls] == ["bulk_load_claim_and_stage"]
    assert run.output == earlier


def test_combined_steps_keep_history_independent_of_records(orchestrator):
    small = replay(orchestrator, load_input(records=(1_000, 3_000), combined_steps=True),
                   FakeOrg(records=(1_000, 3_000)), START)
    large = replay(orchestrator, load_input(records=(10_000, 30_000), combined_steps=True),
                   FakeOrg(records=(10_000, 30_000)), START)

    assert abs(large.history_bytes - small.history_bytes) <= 20
    assert large.history_bytes < 20_000


# -- a load started now: a level staged ahead also has its parts submitted there ------------


def test_submit_ahead_submits_a_levels_parts_where_it_is_staged(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True, submit_ahead=True),
                 FakeOrg(polls_until_done=3), START)

    assert [name for name, _ in run.calls] == [
        "bulk_load_claim_and_stage",  # claimed, the accounts staged and submitted
        "bulk_load_prepare_level",
        *["bulk_load_poll_jobs"] * 3,
        "bulk_load_collect_and_stage",  # results, the contacts staged and submitted
        *["bulk_load_poll_jobs"] * 3,
        "bulk_load_collect_and_stage",
        "bulk_load_finish",
    ]
    assert run.called("bulk_load_claim_and_stage")[0]["submit_load_id"] == "load-1"
    collects = run.called("bulk_load_collect_and_stage")
    assert [c["submit_load_id"] for c in collects] == ["load-1", None]
    assert run.called("bulk_load_poll_jobs") == \
        [{"job_ids": ["750J1"]}] * 3 + [{"job_ids": ["750J2"]}] * 3
    summary = run.output
    assert [level["jobs"] for level in summary["levels"]] == [["750J1"], ["750J2"]]
    assert [level["succeeded"] for level in summary["levels"]] == [2, 3]
    assert summary["outcome"] == "succeeded"


def test_parts_not_submitted_ahead_are_submitted_by_their_levels_step(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True, submit_ahead=True),
                 FakeOrg(polls_until_done=1, parts=3, submit_ahead_parts=1), START)

    submits = run.called("bulk_load_submit_part")
    assert [(s["level_index"], s["part"]) for s in submits] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert [len(level["jobs"]) for level in run.output["levels"]] == [3, 3]
    assert run.output["outcome"] == "succeeded"


def test_a_load_started_without_submit_ahead_replays_with_its_own_submit_steps(orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True), FakeOrg(polls_until_done=1),
                 START)

    assert run.called("bulk_load_claim_and_stage")[0]["submit_load_id"] is None
    assert len(run.called("bulk_load_submit_part")) == 2


def test_a_child_level_is_prepared_with_the_digest_of_the_body_the_post_validated(
        orchestrator):
    run = replay(orchestrator, load_input(combined_steps=True, submit_ahead=True,
                                          body_digest="ab" * 32), FakeOrg(), START)

    assert run.called("bulk_load_prepare_level") == [
        {"prefix": "load-1/run", "level": 1, "body_digest": "ab" * 32}]


# -- a load started now: a level after the first is polled when its jobs should end --------


class PacedOrg(FakeOrg):
    """Jobs that end by the clock: each is queued `queued` seconds after its close, then
    applies its level's records at `rates[level]` a second. Snapshots carry Salesforce's
    times (the close, then the end) and the seconds spent applying records."""

    def __init__(self, queued, rates, records):
        super().__init__(records=records)
        self.queued, self.rates = queued, rates
        self.closes = {}  # job id -> (closed at, level)
        self.now = START

    def __call__(self, name, request, now):
        self.now = now
        if name == "bulk_load_stage_level" and not request["skip"]:
            level = request["level"]
            return {"parts": [{"blob": f"p/{level}/part-0.csv", "records": self.records[level],
                               "size_bytes": 10}],
                    "submitted": self.records[level], "orphans": 0, "columns": ["Name"]}
        if name == "bulk_load_poll_jobs":
            return {"jobs": [self.polled(job_id) for job_id in request["job_ids"]]}
        return super().__call__(name, request, now)

    def submitted(self, load_id, staged):
        jobs = super().submitted(load_id, staged)
        for job, part in zip(jobs, staged["parts"] if staged else [], strict=False):
            self.closes[job["id"]] = (self.now, int(part["blob"].split("/")[1]))
            job["changed_at"] = self.now.isoformat()
        return jobs

    def polled(self, job_id):
        closed_at, level = self.closes[job_id]
        records, rate = self.records[level], self.rates[level]
        applying = (self.now - closed_at).total_seconds() - self.queued
        if applying * rate < records:
            return {**self.job(job_id, "InProgress" if applying > 0 else "UploadComplete"),
                    "processed": max(0, int(applying * rate)),
                    "changed_at": closed_at.isoformat()}
        ended = closed_at + timedelta(seconds=self.queued + records / rate)
        return {**self.job(job_id, "JobComplete"), "processed": records,
                "changed_at": ended.isoformat(), "active_seconds": records / rate}


def seconds_after_start(timers):
    return [round((timer - START).total_seconds(), 3) for timer in timers]


def paced_input(poll_interval=10.0, predicted_polls=True):
    return load_input(records=(10_000, 30_000), poll_interval=poll_interval,
                      first_poll_delay=0.5, combined_steps=True, submit_ahead=True,
                      predicted_polls=predicted_polls)


def test_a_child_level_is_polled_when_its_jobs_should_end_at_its_parents_pace(orchestrator):
    # The accounts: queued 1 s, 10,000 at 40,000 a second, ended 1.25 s after the close.
    org = PacedOrg(queued=1.0, rates=(40_000, 40_000), records=(10_000, 30_000))

    run = replay(orchestrator, paced_input(), org, START)

    # The accounts polled soon after the close, then 1 s later (1.5 s: ended); the
    # contacts, closed then, queued as long and applied as fast: 1.5 + 1 + 0.75.
    assert seconds_after_start(run.timers) == [0.5, 1.5, 3.25]
    assert [level["succeeded"] for level in run.output["levels"]] == [10_000, 30_000]


def test_a_job_slower_than_predicted_is_polled_by_what_it_has_left_to_apply(orchestrator):
    # The contacts apply 30,000 a second, not 40,000: they end at 1.5 + 1 + 1 = 3.5 s.
    org = PacedOrg(queued=1.0, rates=(40_000, 30_000), records=(10_000, 30_000))

    run = replay(orchestrator, paced_input(), org, START)

    # At 3.25 s 22,500 are applied: 7,500 more take 0.19 s at the accounts' pace, but the
    # job is 1.75 s old, so the next poll is a quarter of that later, at 3.6875 s.
    assert seconds_after_start(run.timers) == [0.5, 1.5, 3.25, 3.688]
    assert run.output["outcome"] == "succeeded"


def test_a_predicted_poll_is_no_later_than_the_poll_interval(orchestrator):
    org = PacedOrg(queued=1.0, rates=(40_000, 40_000), records=(10_000, 30_000))

    run = replay(orchestrator, paced_input(poll_interval=1.0), org, START)

    assert seconds_after_start(run.timers) == [0.5, 1.5, 2.5, 3.25]


def test_a_load_started_without_predicted_polls_replays_with_polls_backing_off(orchestrator):
    org = PacedOrg(queued=1.0, rates=(40_000, 40_000), records=(10_000, 30_000))

    run = replay(orchestrator, paced_input(predicted_polls=False), org, START)

    # The contacts, closed at 1.5 s, are polled 0.5, 1.5 and 3.5 s after (ended at 3.25).
    assert seconds_after_start(run.timers) == [0.5, 1.5, 2.0, 3.0, 5.0]


def test_without_salesforce_times_a_child_level_is_polled_backing_off(orchestrator):
    run = replay(orchestrator, load_input(poll_interval=10.0, first_poll_delay=0.5,
                                          combined_steps=True, submit_ahead=True,
                                          predicted_polls=True),
                 FakeOrg(polls_until_done=3), START)

    assert seconds_after_start(run.timers) == [0.5, 1.5, 3.5, 4.0, 5.0, 7.0]


def test_a_job_much_slower_than_predicted_is_polled_at_gaps_growing_with_its_age(
        orchestrator):
    # The contacts apply 5,000 a second: they end at 1.5 + 1 + 6 = 8.5 s.
    org = PacedOrg(queued=1.0, rates=(40_000, 5_000), records=(10_000, 30_000))

    run = replay(orchestrator, paced_input(poll_interval=10.0), org, START)

    contacts = seconds_after_start(run.timers)[2:]
    # At the prediction, 3.25 s; then what is left at the accounts' pace (26,250 records,
    # 0.66 s), then a quarter of the job's age each time: 7 polls, the last 0.34 s after
    # the end (backing off from the close: 2, 3, 5, 9 s, 0.5 s after).
    assert contacts == [3.25, 3.906, 4.508, 5.26, 6.2, 7.375, 8.843]
