"""The status document, the example job from settings, and the sync settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from shared.config import SettingsError, all_settings, load_settings
from shared.sync.catalog import JOB_DEFINITIONS, sync_jobs
from shared.sync.lock import InstanceSnapshot, decide_tick
from shared.sync.state import Lease
from shared.sync.status import (
    current_rows_per_second,
    job_status,
    lock_state,
    run_rows_per_second,
    unknown_job_problem,
)
from tests.sync.drive import run_once
from tests.sync.sources import BASE, asset_job

BASE_SETTINGS = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_status_shows_lock_watermark_lag_runs_and_ticks(sqlite_assets, state, salesforce_sink):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 4))
    job = asset_job(sqlite_assets, min_interval=timedelta(minutes=1))
    state.lease.acquire(job.name, None, "run-1", datetime.now(UTC), job.max_run_time)
    run = run_once(job, state, salesforce_sink, run_id="run-1")
    state.ticks.count(job.name, "skipped_busy")
    now = datetime.now(UTC)
    instance = InstanceSnapshot("Completed", run.run_id, run.started_at)
    decision = decide_tick(now, enabled=True, instance=instance,
                           lease=state.lease.read(job.name), max_run_time=job.max_run_time,
                           min_interval=job.min_interval)
    body = job_status(job, state, instance, decision, custom_status=None,
                      schedule="0 */2 * * * *", now=now)

    assert body["lock"]["state"] == "min_interval"  # the min interval since the run started
    assert body["lock"]["lease"]["runId"] == run.run_id
    assert body["watermark"]["cursor"] == BASE.isoformat()
    assert body["watermark"]["key"] == [3]
    assert body["lagSeconds"] == pytest.approx(
        (now - BASE.replace(tzinfo=UTC)).total_seconds(), abs=1)
    assert body["lastRuns"][0]["outcome"] == "succeeded"
    assert body["lastRuns"][0]["rows"] == 3
    assert body["lastRuns"][0]["rowsPerSecond"] > 0
    assert body["rowsPerSecond"] == {
        "current": None, "last": body["lastRuns"][0]["rowsPerSecond"]}
    assert body["ticks"]["skippedBusy"] == 1
    times = [body["lock"]["runStartedAt"], body["lock"]["lease"]["lockedAt"],
             body["lock"]["lease"]["lockedUntil"], body["watermark"]["updatedAt"],
             body["lastRuns"][0]["startedAt"], body["lastRuns"][0]["endedAt"],
             body["ticks"]["lastTick"]]
    assert all(text.endswith("Z") and "+00:00" not in text for text in times), times
    assert job.source.connection_string not in repr(body)


def test_the_lock_state_names_what_holds_the_lock():
    now = datetime.now(UTC)
    ended = InstanceSnapshot("Completed", "run-1", now - timedelta(minutes=1))
    lease = Lease(now + timedelta(minutes=59), now - timedelta(minutes=1), "run-1", "etag")
    starting = Lease(now + timedelta(hours=1), now, "run-2", "etag")

    def state(*, enabled: bool, instance: InstanceSnapshot, lease: Lease | None) -> str:
        return lock_state(decide_tick(now, enabled=enabled, instance=instance, lease=lease,
                                      max_run_time=timedelta(hours=1),
                                      min_interval=timedelta(minutes=5)))

    assert state(enabled=True, instance=ended, lease=lease) == "min_interval"
    assert state(enabled=True, instance=ended, lease=starting) == "lease"
    assert state(enabled=True, instance=InstanceSnapshot("Running", "run-1", now),
                 lease=lease) == "running"
    assert state(enabled=True, instance=ended, lease=None) == "free"
    assert state(enabled=False, instance=ended, lease=lease) == "disabled"


def test_unknown_job_is_a_problem_document():
    problem = unknown_job_problem("nope", ["asset-changes"], "/api/sync/nope")
    assert problem.status == 404 and problem.body["title"] == "Unknown sync job"
    assert problem.body["code"] == "UNKNOWN_JOB"
    assert "asset-changes" in problem.body["detail"]


def test_example_job_is_built_from_its_settings():
    settings = load_settings({
        **BASE_SETTINGS,
        "SYNC_ASSET_CHANGES_ENABLED": "true",
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": "Driver={SQLite3};Database=x.db;Pwd=s3cret;",
        "SYNC_ASSET_CHANGES_SOURCE_VIEW": "Usr_SW_Salesforce_Assets_Changes_V",
        "SYNC_ASSET_CHANGES_LAG": "00:00:05",
        "SYNC_ASSET_CHANGES_PAGE_SIZE": "250",
        "SALESFORCE_LOGIN_URL": "https://example.my.salesforce.com",
        "SALESFORCE_CLIENT_ID": "client-id",
        "SALESFORCE_CLIENT_SECRET": "client-s3cret",
    })
    job = sync_jobs(settings)["asset-changes"]
    assert job.enabled and job.page_size == 250
    assert job.source.lag == timedelta(seconds=5)
    assert job.source.sql_dialect().name == "sqlite"
    assert job.instance_id == "sync-asset-changes"
    # Named in the dead letters of rows without key or cursor (null_rows.py).
    assert job.view_setting == "SYNC_ASSET_CHANGES_SOURCE_VIEW"
    assert "s3cret" not in repr(job) and "s3cret" not in repr(settings)


def test_an_enabled_salesforce_sink_needs_the_org_named_at_start_up():
    with pytest.raises(SettingsError) as caught:
        load_settings({
            **BASE_SETTINGS,
            "SYNC_ASSET_CHANGES_ENABLED": "true",
            "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": "Driver={SQLite3};Database=x.db;",
        })

    assert caught.value.problems == [
        "SALESFORCE_LOGIN_URL is missing: SYNC_ASSET_CHANGES_ENABLED is true and "
        "SYNC_ASSET_CHANGES_SINK is salesforce"
    ]


def test_every_problem_of_the_sync_settings_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({
            **BASE_SETTINGS,
            "SYNC_ASSET_CHANGES_ENABLED": "true",
            "SYNC_ASSET_CHANGES_SINK": "http",
            "SYNC_ASSET_CHANGES_MIN_INTERVAL": "3600",
            "SYNC_ASSET_CHANGES_MAX_RUN_TIME": "60",
            "SYNC_ASSET_CHANGES_INITIAL_WATERMARK": "yesterday",
        })
    text = str(caught.value)
    for name in ("SYNC_ASSET_CHANGES_SOURCE_CONNECTION", "SYNC_ASSET_CHANGES_HTTP_URL",
                 "SYNC_ASSET_CHANGES_MIN_INTERVAL", "SYNC_ASSET_CHANGES_INITIAL_WATERMARK"):
        assert name in text


def test_malformed_schedule_names_the_setting():
    with pytest.raises(SettingsError, match="SYNC_ASSET_CHANGES_SCHEDULE is malformed"):
        load_settings({**BASE_SETTINGS, "SYNC_ASSET_CHANGES_SCHEDULE": "*/5 * * * *"})


def test_secrets_are_declared_as_secrets():
    secrets = {spec.name for spec in all_settings() if spec.secret}
    assert {"SYNC_ASSET_CHANGES_SOURCE_CONNECTION",
            "SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION"} <= secrets


def test_the_app_starts_without_any_sync_setting():
    settings = load_settings(BASE_SETTINGS)
    assert not sync_jobs(settings)["asset-changes"].enabled


def test_every_job_definition_has_a_declared_schedule_and_its_own_lock():
    declared = {spec.name for spec in all_settings()}
    jobs = sync_jobs(load_settings(BASE_SETTINGS))
    assert sorted(jobs) == sorted(d.name for d in JOB_DEFINITIONS)
    for definition in JOB_DEFINITIONS:
        assert definition.schedule_setting in declared, definition
        assert definition.schedule_setting == "SYNC_ASSET_CHANGES_SCHEDULE"
        assert jobs[definition.name].schedule_setting == definition.schedule_setting
        assert definition.timer_function == "sync_tick_asset_changes"
    assert len({job.instance_id for job in jobs.values()}) == len(jobs)


def test_a_job_description_is_checked_when_it_is_built(sqlite_assets):
    with pytest.raises(ValueError) as caught:
        asset_job(sqlite_assets, name="Bad Name", min_interval=timedelta(hours=1),
                  max_run_time=timedelta(minutes=1), masked_fields=("Not_A_Column",))
    text = str(caught.value)
    assert "job name 'Bad Name'" in text
    assert "lockAtLeastFor <= lockAtMostFor" in text
    assert "Not_A_Column" in text


def test_the_rows_per_second_of_a_run_under_way_come_from_its_progress():
    started = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    progress = {"started_at": started.isoformat(), "rows": 5000}
    running = InstanceSnapshot("Running", "run-1", started)
    now = started + timedelta(seconds=4)
    assert current_rows_per_second(progress, running, now) == 1250.0
    assert current_rows_per_second(progress, running, now, checkpointed_rows=8000) == 2000.0
    assert current_rows_per_second(progress, InstanceSnapshot("Completed"), now) is None
    # A backlog run: its watermark (0 rows) moves at the end, its jobs' progress before.
    assert current_rows_per_second(progress, running, now, checkpointed_rows=0) == 1250.0
    assert run_rows_per_second({"StartedAt": started.isoformat(), "Rows": 900,
                                "EndedAt": (started + timedelta(seconds=3)).isoformat()}) \
        == 300.0
    assert run_rows_per_second({"StartedAt": started.isoformat(), "Rows": 9}) is None


@pytest.mark.parametrize("masked", [(), ("Contact_Email",), ("Contact_Email", "Serial_Number")])
def test_a_row_masker_gives_what_masking_the_rows_dict_gives(masked):
    job = asset_job(SimpleNamespace(connection_string="", dialect="sqlite", view="v"),
                    masked_fields=masked)
    names = ("Asset_ID", "Serial_Number", "Contact_Email")
    rows = [(1, "SN-00000001", "owner1@example.com"), (2, None, None), (3, "SN-3", "a@b.c")]

    masker = job.row_masker(names)

    assert [masker(values) for values in rows] == [
        job.mask(dict(zip(names, values, strict=True))) for values in rows]
    if masked:
        assert masker(rows[0])["Contact_Email"] == "**************.com"
