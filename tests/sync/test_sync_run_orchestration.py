"""The sync_run orchestrator's waits for the Bulk API jobs of earlier attempts and runs,
replayed through the real Durable SDK (tests/replay_driver.py): which activities and
timers it asks for, what it keeps in history (no I/O here)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.sync.messages import RunInput, RunTotals
from tests.replay_driver import ActivityFailed, orchestrator_function
from tests.replay_driver import replay as replay_orchestration

START = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
BOUND = {"value": "2026-12-01T00:00:00", "inclusive": True}


@pytest.fixture(scope="module")
def orchestrator():
    with orchestrator_function("orchestrators.sync.orchestration", "sync_run") as function:
        yield function


def run_input(waits: bool = True) -> dict:
    return RunInput("asset-changes", "run-2", START, page_attempts=2, page_retry_delay=1.0,
                    pages_per_generation=5, backlog_poll_interval=4.0,
                    waits_for_recorded_jobs=waits).to_json()


class FakeRun:
    """Answers the run's activities: begin's count of earlier jobs running (None: not
    known), then `earlier` counts in turn (then 0)."""

    def __init__(self, backlog: bool, begin_earlier: int | None = 0, earlier=(),
                 settle_fails: int = 0) -> None:
        self.backlog, self.earlier, self.settle_fails = backlog, list(earlier), settle_fails
        self.begin_earlier = begin_earlier
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, name, request, now):
        self.calls.append((name, request))
        done = {"pages": 1, "rows": 30, "totals": RunTotals(1, 30, 30, 0).to_json(),
                "position": {"cursor": "2026-11-30T00:00:00", "key": "30"}, "done": True}
        if name == "sync_begin_run":
            begun = {"upper_bound": BOUND, "backlog": self.backlog}
            if self.begin_earlier is not None:
                begun["earlier_jobs"] = {"running": self.begin_earlier}
            return begun
        if name == "sync_settle_earlier_jobs":
            if self.settle_fails:
                self.settle_fails -= 1
                return {"failure": {"code": "SERVER_UNAVAILABLE", "error": "Salesforce down",
                                    "retryable": True}}
            return {"running": self.earlier.pop(0) if self.earlier else 0}
        if name == "sync_stage_backlog":
            return {"rows": 30, "position": done["position"], "jobs": [
                {"id": f"750J{k}", "state": "UploadComplete"} for k in (1, 2)]}
        if name == "sync_poll_backlog":
            return {"jobs": [{"id": job_id, "state": "JobComplete", "processed": 15}
                             for job_id in request["job_ids"]]}
        if name in ("sync_finish_backlog", "sync_pages"):
            return done
        if name == "sync_end_run":
            return None
        raise AssertionError(f"unexpected activity {name}")


def replay(orchestrator, run, respond):
    return replay_orchestration(orchestrator, run, respond, START, orchestration="sync_run",
                                instance_id="sync-asset-changes")


def test_a_run_waits_for_the_jobs_a_failed_run_left_before_it_writes(orchestrator):
    run = replay(orchestrator, run_input(),
                 FakeRun(backlog=False, begin_earlier=2, earlier=(1, 0)))

    assert run.names()[:4] == ["sync_begin_run", "sync_settle_earlier_jobs",
                               "sync_settle_earlier_jobs", "sync_pages"]
    assert run.called("sync_settle_earlier_jobs")[0]["job_ids"] == []
    assert len(run.timers) == 2  # one durable timer before each check, no busy loop
    assert run.called("sync_end_run")[0]["outcome"] == "succeeded"


def test_a_run_whose_begin_found_no_earlier_job_running_asks_nothing_more(orchestrator):
    run = replay(orchestrator, run_input(), FakeRun(backlog=False, begin_earlier=0))

    assert run.names() == ["sync_begin_run", "sync_pages", "sync_end_run"]
    assert run.timers == []


def test_a_round_is_finished_only_once_the_jobs_of_earlier_attempts_ended(orchestrator):
    run = replay(orchestrator, run_input(), FakeRun(backlog=True, earlier=(3,)))

    names = run.names()
    last_settle = max(at for at, name in enumerate(names) if name == "sync_settle_earlier_jobs")
    assert names.index("sync_poll_backlog") < last_settle < names.index("sync_finish_backlog")
    settles = run.called("sync_settle_earlier_jobs")
    # The round's own jobs are named: those it counts and dead-letters itself.
    assert [settle["job_ids"] for settle in settles] == [["750J1", "750J2"]] * 2


def test_a_run_whose_earlier_jobs_cannot_be_checked_fails_without_writing(orchestrator):
    fake = FakeRun(backlog=False, begin_earlier=None, settle_fails=2)
    with pytest.raises(Exception, match="Salesforce down"):  # the SDK raises it as is
        replay(orchestrator, run_input(), fake)

    names = [name for name, _request in fake.calls]
    assert names == ["sync_begin_run", "sync_settle_earlier_jobs", "sync_settle_earlier_jobs",
                     "sync_end_run"]
    assert fake.calls[-1][1]["outcome"] == "failed"


def test_a_run_started_by_an_earlier_version_replays_without_the_waits(orchestrator):
    run = replay(orchestrator, run_input(waits=False), FakeRun(backlog=True, earlier=(5,)))

    assert "sync_settle_earlier_jobs" not in run.names()
    assert run.called("sync_end_run")[0]["outcome"] == "succeeded"


@pytest.mark.parametrize("failing", ["sync_begin_run", "sync_pages"])
def test_an_activity_that_raised_is_recorded_in_one_line_without_its_stack(
    orchestrator, failing
):
    # The runs row's error is answered by the status endpoint: no traceback in it.
    class Raising(FakeRun):
        def __call__(self, name, request, now):
            if name == failing:
                self.calls.append((name, request))
                raise ActivityFailed("the source went away")
            return super().__call__(name, request, now)

    fake = Raising(backlog=False)
    with pytest.raises(Exception, match="the source went away"):
        replay(orchestrator, run_input(), fake)
    end = fake.calls[-1][1]
    assert end["outcome"] == "failed"
    assert "the source went away" in end["error"]
    assert "\n" not in end["error"] and "Traceback" not in end["error"], end["error"]
