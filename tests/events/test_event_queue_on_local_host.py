"""The event queue on the local Functions host (devhost) with Azurite, SQLite and the
simulator: concurrent posters, a host killed mid-drain, and the race at the drain's end."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from tests.events.event_host import (
    EventHost,
    VersionedAssets,
    assert_no_overlap,
    drained,
    event_env,
)
from tests.sync.sources import BASE, AssetSource

POSTERS = 20
EVENTS_PER_POSTER = 1000
CHUNK = 100
RECORDS = 500


@pytest.fixture
def assets(sqlite_assets: AssetSource) -> VersionedAssets:
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, RECORDS + 1))
    return VersionedAssets(sqlite_assets)


def poster_events(seed: int) -> list[tuple[int, int]]:
    """(asset id, version) pairs: ids overlap between posters, versions come in any order."""
    rng = random.Random(seed)
    return [(rng.randint(1, RECORDS), rng.randint(2, 1_000_000))
            for _ in range(EVENTS_PER_POSTER)]


def post_concurrently(host: EventHost, assets: VersionedAssets,
                      during: threading.Event | None = None) -> dict[int, int]:
    """20 posters x 1,000 events, each chunk written to the source first, as a system whose
    trigger posts after its commit; returns the newest version of each record."""
    plans = [poster_events(seed) for seed in range(POSTERS)]

    def run(plan: list[tuple[int, int]]) -> None:
        for start in range(0, len(plan), CHUNK):
            chunk = plan[start:start + CHUNK]
            assets.write(chunk)
            host.post_until_accepted([{"object": "Asset", "id": asset_id, "operation": "upsert",
                                       "version": version} for asset_id, version in chunk])
            if during is not None and start == CHUNK * 3:
                during.set()

    with ThreadPoolExecutor(max_workers=POSTERS) as pool:
        list(pool.map(run, plans))
    newest: dict[int, int] = {}
    for plan in plans:
        for asset_id, version in plan:
            newest[asset_id] = max(newest.get(asset_id, 0), version)
    return newest


def assert_records_at_newest_versions(sfsim, newest: dict[int, int]) -> None:
    stored = {record["External_Id__c"]: record for record in sfsim.records("Asset")}
    wrong = {asset_id: (version, stored.get(f"ASSET-{asset_id}", {}).get("Status"))
             for asset_id, version in newest.items()
             if stored.get(f"ASSET-{asset_id}", {}).get("Status") != f"v{version}"}
    assert not wrong, f"{len(wrong)} records not at their newest version: {list(wrong.items())[:5]}"


@pytest.mark.slow
def test_twenty_concurrent_posters_every_record_ends_at_its_newest_version(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets):
    host = EventHost.start(tmp_path, event_env(azurite, sfsim, assets.source,
                                               EVENTS_MAX_ATTEMPTS="20"))
    try:
        newest = post_concurrently(host, assets)
        body = host.wait_until_drained()

        assert_records_at_newest_versions(sfsim, newest)
        assert len(sfsim.records("Asset")) == len(newest)
        assert body["totals"]["deadLettered"] == 0 and body["totals"]["processed"] >= len(newest)
        assert assert_no_overlap(host.batch_intervals()) >= 2
        assert "(Failed," not in host.host.output()
    finally:
        host.host.stop()


@pytest.mark.slow
def test_a_host_killed_mid_drain_and_restarted_loses_nothing(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets):
    host = EventHost.start(tmp_path, event_env(azurite, sfsim, assets.source,
                                               EVENTS_MAX_ATTEMPTS="20"))
    sfsim.configure(slow_seconds=0.1)
    posting_under_way = threading.Event()

    def kill_and_restart() -> None:
        posting_under_way.wait(120)
        deadline = time.monotonic() + 60
        while len(sfsim.records("Asset")) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        host.host.kill()
        time.sleep(1.0)
        host.restart()

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    try:
        newest = post_concurrently(host, assets, during=posting_under_way)
        killer.join(180)
        sfsim.configure(slow_seconds=0)
        host.wait_until_drained()

        assert_records_at_newest_versions(sfsim, newest)
        assert len(host.logs) == 2  # the drain ran in both hosts
        assert assert_no_overlap(host.batch_intervals()) >= 2
    finally:
        killer.join(180)
        host.host.stop()


@pytest.mark.parametrize(("pause_at", "hold_seconds", "drain_answer"), [
    # Posted between the drain's last empty look and its idle mark: this drain goes on.
    ("before_idle_mark", 0.5, "running"),
    # Posted after the idle mark, while the drain completes: the post starts the next.
    ("after_idle_mark", 1.0, "started"),
    # The same, with the completion held past the post's wait: the safety timer starts it.
    ("after_idle_mark", 7.0, "deferred"),
])
def test_events_posted_at_the_moment_a_drain_ends_are_processed_within_the_bound(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets, pause_at: str,
        hold_seconds: float, drain_answer: str):
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    # Only the last case leaves the start to the safety timer; elsewhere a drain it started
    # while the poster waits would answer the poster `running` (rightly: it started after
    # the poster's mark), so it ticks once a year there.
    timer = {} if drain_answer == "deferred" else {"EVENTS_SAFETY_SCHEDULE": "0 0 0 1 1 *"}
    host = EventHost.start(tmp_path, event_env(
        azurite, sfsim, assets.source, EVENTS_TEST_PAUSE_AT=pause_at,
        EVENTS_TEST_PAUSE_DIR=str(pause_dir), **timer))
    try:
        assets.write([(1, 5), (2, 7)])
        (pause_dir / "armed").write_text("armed")
        first = host.post("/api/events", {"object": "Asset", "id": 1, "operation": "upsert"})
        assert first.status_code == 202, first.text
        deadline = time.monotonic() + 60
        while not (pause_dir / "paused").exists():
            assert time.monotonic() < deadline, host.host.output()[-3000:]
            time.sleep(0.02)
        assert [record["Status"] for record in sfsim.records("Asset")] == ["v5"]

        answers: list = []
        poster = threading.Thread(target=lambda: answers.append(host.post(
            "/api/events", {"object": "Asset", "id": 2, "operation": "upsert", "version": 7})))
        poster.start()
        time.sleep(hold_seconds)
        (pause_dir / "release").write_text("release")
        poster.join(60)

        assert answers[0].status_code == 202 and answers[0].json()["drain"] == drain_answer
        # The bound: the safety timer's interval (2 s here) after the drain let go; the
        # wait below is that bound with room for a loaded machine.
        host.wait_for(lambda body: drained(body) and body["totals"]["processed"] == 2,
                      timeout=30)
        assert sorted(record["Status"] for record in sfsim.records("Asset")) == ["v5", "v7"]
        if drain_answer == "deferred":
            assert "safety timer: drain started" in host.host.output()
    finally:
        host.host.stop()


def test_a_poster_that_saw_idle_and_lost_the_start_to_a_later_poster_answers_running(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets):
    """The first poster after a drain ended sees `idle`; a second one, whose mark came
    after, starts the drain first: the first is refused by a drain that started after its
    mark, so that drain sees its events, and it says so at once (not `deferred` after
    waiting for a drain that is not finishing)."""
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    # The safety timer ticks once a year here: every 2 s (the tests' default) it would
    # find the held poster's event queued and start a drain itself, which the second
    # poster would then rightly answer `running` (seen once under CI load).
    host = EventHost.start(tmp_path, event_env(
        azurite, sfsim, assets.source, EVENTS_TEST_PAUSE_AT="after_mark",
        EVENTS_TEST_PAUSE_DIR=str(pause_dir), EVENTS_SAFETY_SCHEDULE="0 0 0 1 1 *"))
    try:
        assets.write([(1, 5), (2, 7), (3, 9)])
        assert host.post("/api/events", {"object": "Asset", "id": 3,
                                         "operation": "upsert"}).status_code == 202
        host.wait_for(lambda body: drained(body) and body["totals"]["processed"] == 1,
                      timeout=60)
        sfsim.configure(slow_seconds=1.0)  # the second poster's drain is still running
        (pause_dir / "armed").write_text("armed")
        answers: list = []
        first = threading.Thread(target=lambda: answers.append(host.post(
            "/api/events", {"object": "Asset", "id": 1, "operation": "upsert"})))
        first.start()
        deadline = time.monotonic() + 60
        while not (pause_dir / "paused").exists():
            assert time.monotonic() < deadline, host.host.output()[-3000:]
            time.sleep(0.02)
        second = host.post("/api/events", {"object": "Asset", "id": 2, "operation": "upsert"})
        assert second.status_code == 202 and second.json()["drain"] == "started"
        (pause_dir / "release").write_text("release")
        first.join(60)

        assert answers[0].status_code == 202 and answers[0].json()["drain"] == "running"
        host.wait_for(lambda body: drained(body) and body["totals"]["processed"] == 3,
                      timeout=60)
        assert sorted(record["Status"] for record in sfsim.records("Asset")) == [
            "v5", "v7", "v9"]
        assert host.host.output().count("event drain started: run_id=") == 2
    finally:
        sfsim.configure(slow_seconds=0)
        host.host.stop()


def test_the_endpoints_validate_everything_and_answer_under_the_function_key(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets):
    host = EventHost.start(tmp_path, event_env(azurite, sfsim, assets.source))
    try:
        bad = host.post("/api/events", {"events": [
            {"object": "Asset", "id": 1, "operation": "upsert"},
            {"object": "Asset", "id": 2, "operation": "merge"},
            {"object": "Invoice", "id": 3, "operation": "upsert"}]})
        not_json = host.post("/api/events", raw=b"{not json")
        without_key = [host.post("/api/events", {"object": "Asset", "id": 1,
                                                 "operation": "upsert"}, key=False),
                       host.post("/api/events/drain", key=False)]

        assert bad.status_code == 400
        assert bad.headers["Content-Type"].startswith("application/problem+json")
        assert bad.json()["code"] == "INVALID_EVENTS"
        assert [(e["index"], e["code"]) for e in bad.json()["errors"]] == [
            (1, "INVALID_OPERATION"), (2, "UNKNOWN_OBJECT")]
        assert (not_json.status_code, not_json.json()["code"]) == (400, "INVALID_JSON")
        assert [answer.status_code for answer in without_key] == [401, 401]
        assert host.status()["queue"]["depth"] == 0 and sfsim.records("Asset") == []

        assets.write([(1, 3)])
        accepted = host.post("/api/events", {"object": "Asset", "id": 1, "operation": "upsert"})
        assert accepted.status_code == 202
        assert {key: accepted.json()[key] for key in (
            "accepted", "stored", "queueDepth", "queueDepthExact")} == {
            "accepted": 1, "stored": 1, "queueDepth": 1, "queueDepthExact": True}
        bad_query = host.get("/api/events?exact=yes")
        assert (bad_query.status_code, bad_query.json()["code"]) == (400, "INVALID_QUERY")
        body = host.wait_until_drained(timeout=60)
        assert body["queue"]["complete"] is True
        assert host.get("/api/events?exact=true").json()["queue"]["complete"] is True
        assert body["totals"]["processed"] == 1 and body["drain"]["runtimeStatus"] == "Completed"
        assert body["drain"]["customStatus"]["phase"] == "finished"

        started = host.post("/api/events/drain")
        assert started.status_code == 202 and started.json()["drain"] == "started"
        host.wait_until_drained(timeout=60)
        assert [record["Status"] for record in sfsim.records("Asset")] == ["v3"]
    finally:
        host.host.stop()


def test_each_batch_is_an_asset_events_instance_and_a_failing_event_is_dead_lettered(
        tmp_path: Path, azurite, sfsim, assets: VersionedAssets):
    host = EventHost.start(tmp_path, event_env(azurite, sfsim, assets.source,
                                               EVENTS_MAX_ATTEMPTS="2"))
    try:
        assets.write([(1, 4)])
        accepted = host.post("/api/events", {"events": [
            {"object": "Asset", "id": 1, "operation": "upsert"},
            {"object": "Asset", "id": RECORDS + 7, "operation": "upsert"}]})  # no such row
        assert accepted.status_code == 202, accepted.text
        body = host.wait_for(lambda body: drained(body)
                             and body["totals"]["deadLettered"] == 1, timeout=60)

        assert body["totals"]["processed"] == 1
        assert [record["Status"] for record in sfsim.records("Asset")] == ["v4"]
        [letter] = TableServiceClient.from_connection_string(
            azurite.connection_string).get_table_client(
            host.env["EVENTS_DEAD_LETTER_TABLE"]).list_entities()
        assert (letter["RecordId"], letter["Attempts"], letter["ErrorCode"]) == (
            str(RECORDS + 7), 2, "SourceRowMissing")
        assert letter["Error"].startswith("upsert: ") and "Traceback" not in letter["Error"]
        job = host.get("/api/batch-jobs/asset-events")
        assert job.status_code == 200, job.text
        assert job.json()["steps"] == ["check", "upsert", "delete"]
        instances = job.json()["instances"]
        assert len(instances) == 2  # one per batch: the first try, then the retry
        assert {instance["status"] for instance in instances} == {"SUCCESSFUL"}
        assert sorted((i["totalRecords"], i["failedRecords"]) for i in instances) == [
            (1, 1), (2, 1)]
        first = instances[-1]["batchJobInstanceId"]
        failures = host.get(f"/api/batch-jobs/asset-events/{first}/failures")
        assert failures.status_code == 200 and "SourceRowMissing" in failures.text
        # Each instance's start and the drain's start are log events with their ids.
        output = host.host.output()
        for instance in instances:
            assert (f"batch instance started: batch_job=asset-events, instance_id="
                    f"{instance['batchJobInstanceId']}, status=EXECUTING, total_records="
                    f"{instance['totalRecords']}") in output
        assert "event drain started: run_id=" in output

        # The user sees the letter, gives the record its source row and replays it.
        listed = host.get(f"/api/events/dead-letters?object=Asset&id={RECORDS + 7}")
        assert listed.status_code == 200, listed.text
        [shown] = listed.json()["deadLetters"]
        assert (shown["id"], shown["errorCode"], shown["attempts"]) == (
            str(RECORDS + 7), "SourceRowMissing", 2)
        bad = [host.post("/api/events/dead-letters/replay", {"object": "Invoice"}),
               host.post("/api/events/dead-letters/replay", raw=b"{"),
               host.get("/api/events/dead-letters?top=0")]
        assert [(answer.status_code, answer.json()["code"]) for answer in bad] == [
            (400, "UNKNOWN_OBJECT"), (400, "INVALID_JSON"), (400, "INVALID_QUERY")]
        assert all(answer.headers["Content-Type"].startswith("application/problem+json")
                   for answer in bad)
        assets.source.insert([(RECORDS + 7, BASE)])
        replayed = host.post("/api/events/dead-letters/replay", {"object": "Asset"})
        assert replayed.status_code == 202, replayed.text
        assert {key: replayed.json()[key] for key in ("replayed", "lettersRemoved")} == {
            "replayed": 1, "lettersRemoved": 1}
        body = host.wait_for(lambda body: drained(body) and body["totals"]["processed"] == 2,
                             timeout=60)
        assert f"ASSET-{RECORDS + 7}" in {record["External_Id__c"]
                                          for record in sfsim.records("Asset")}
        assert host.get("/api/events/dead-letters").json()["deadLetters"] == []
    finally:
        host.host.stop()
