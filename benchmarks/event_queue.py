"""The event queue end to end on the local host (Azurite, SQLite, the simulator).

Measured side by side in one run:
1. acceptance: events/s stored by `POST /api/events` (8 clients, 1,000 events a post,
   distinct records), and its ratio to the floor: the same rows written straight to Table
   Storage in entity-group transactions of 100 (what a post costs at least);
2. drain: events/s from the first post until every record is in the simulator and the
   queue is empty, and its ratio to the floor: the same records upserted straight into the
   simulator through sObject Collections, 200 a call (what the drain costs at least);
3. latency at idle: one event posted while no drain runs, until its record is in the
   simulator, p50 and p95 over 30 samples, beside the floor of one upsert round trip.

    python benchmarks/event_queue.py [--events 20000] [--samples 30] [--batch-size N]

`--batch-size` sets EVENTS_BATCH_SIZE (the app's default otherwise).

`--post` measures instead how long one large `POST /api/events` takes to answer (1,000
and 10,000 distinct records, unversioned and versioned), first with no drain running, then
while a drain works through a backlog, each beside its floor measured just before it: the
same entities written straight to Table Storage in entity-group transactions of 100, one
after another (the app's only object, Asset, is one partition). `--baseline REF` also
starts the app as it was at the git revision REF on a second host and posts the same
bodies to both, paired and alternating, so one run shows before and after:

    python benchmarks/event_queue.py --post [--sizes 1000,10000] [--backlog 20000]
        [--baseline REF] [--repeat N]

Each post is printed as it ends, then the medians of the `--repeat` posts of each case.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from azure.data.tables import TableServiceClient, UpdateMode  # noqa: E402

from devtools import services  # noqa: E402
from sfsim.testing import start_simulator  # noqa: E402
from shared.salesforce import SalesforceClient, SalesforceCredentials  # noqa: E402
from shared.sync.asset_changes import asset_record  # noqa: E402
from tests.events.event_host import APP, BUSY, EventHost, drained, event_env  # noqa: E402
from tests.sync.sources import BASE, COLUMN_LIST, create_asset_source  # noqa: E402

POST_SIZE = 1000
CLIENTS = 8


def event(asset_id: int) -> dict:
    return {"object": "Asset", "id": asset_id, "operation": "upsert"}


def table_floor(connection_string: str, count: int) -> float:
    table = TableServiceClient.from_connection_string(connection_string).create_table(
        "Floor" + uuid.uuid4().hex[:10])
    started = time.perf_counter()
    for start in range(1, count + 1, 100):
        table.submit_transaction([
            ("upsert", {"PartitionKey": "Asset", "RowKey": str(n), "Object": "Asset",
                        "RecordId": str(n), "Operation": "upsert", "Attempts": 0},
             {"mode": UpdateMode.REPLACE}) for n in range(start, min(start + 100, count + 1))])
    return count / (time.perf_counter() - started)


def salesforce_floor(sim, source, count: int) -> tuple[float, float]:
    """(records/s upserted 200 a call, seconds of one single-record upsert)."""
    credentials = SalesforceCredentials(login_url=sim.login_url, client_id=sim.client_id,
                                        client_secret=sim.client_secret)
    rows = []
    with source.connect() as connection:
        cursor = connection.execute(f"SELECT * FROM {source.view}")
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()][:count]
    records = [asset_record(row) for row in rows]
    with SalesforceClient(credentials) as client:
        client.upsert_records("Asset", "External_Id__c", records[:1])
        started = time.perf_counter()
        client.upsert_records("Asset", "External_Id__c", records)
        rate = len(records) / (time.perf_counter() - started)
        single = []
        for record in records[:20]:
            began = time.perf_counter()
            client.upsert_records("Asset", "External_Id__c", [record])
            single.append(time.perf_counter() - began)
    sim.reset()
    return rate, statistics.median(single)


def has_record(sim, external_id: str) -> bool:
    answer = requests.get(f"{sim.base_url}/_sim/records/Asset", timeout=30)
    return any(record.get("External_Id__c") == external_id for record in answer.json())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--post", action="store_true",
                        help="time single large posts beside their floor (see above)")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--baseline", default=None, metavar="REF")
    parser.add_argument("--repeat", type=int, default=1, help="posts a case (medians shown)")
    args = parser.parse_args()
    if args.post:
        return measure_posts([int(size) for size in args.sizes.split(",")], args.backlog,
                             args.baseline, args.repeat)
    workdir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    azurite = services.start_azurite(workdir / "azurite", log_file=workdir / "azurite.log")
    sim = start_simulator()
    source = create_asset_source(services.sqlite_odbc_connection_string(workdir / "src.db"),
                                 "sqlite")
    total = args.events + args.samples
    source.insert((asset_id, BASE) for asset_id in range(1, total + 1))
    host = None
    try:
        accept_floor = table_floor(azurite.connection_string, args.events)
        drain_floor, round_trip = salesforce_floor(sim, source, min(args.events, 5000))
        batch = {"EVENTS_BATCH_SIZE": str(args.batch_size)} if args.batch_size else {}
        host = EventHost.start(workdir, event_env(azurite, sim, source,
                                                  EVENTS_SAFETY_SCHEDULE="*/5 * * * * *",
                                                  **batch))

        # 1 + 2: a burst of distinct records, then until drained.
        posts = [[event(n) for n in range(start, min(start + POST_SIZE, args.events + 1))]
                 for start in range(1, args.events + 1, POST_SIZE)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            list(pool.map(host.post_until_accepted, posts))
        accepted_in = time.perf_counter() - started
        host.wait_until_drained(timeout=1800)
        drained_in = time.perf_counter() - started
        assert len(sim.records("Asset")) == args.events, "not every record arrived"

        # 3: one event at a time, each posted while no drain runs.
        latencies = []
        for asset_id in range(args.events + 1, total + 1):
            host.wait_for(drained, timeout=120)
            began = time.perf_counter()
            host.post_until_accepted([event(asset_id)])
            while not has_record(sim, f"ASSET-{asset_id}"):
                time.sleep(0.01)
            latencies.append(time.perf_counter() - began)
    finally:
        if host is not None:
            host.host.stop()
        sim.stop()
        azurite.stop(grace_seconds=1.0)

    accept_rate = args.events / accepted_in
    drain_rate = args.events / drained_in
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"events: {args.events} in posts of {POST_SIZE} from {CLIENTS} clients, drained "
          f"in batches of {args.batch_size or 'EVENTS_BATCH_SIZE (default)'}")
    print(f"accepted by POST /api/events: {accept_rate:8.0f} events/s   floor (table "
          f"transactions) {accept_floor:8.0f}/s   ratio {accept_rate / accept_floor:.2f}")
    print(f"drained end to end:           {drain_rate:8.0f} events/s   floor (sObject "
          f"Collections) {drain_floor:8.0f}/s   ratio {drain_rate / drain_floor:.2f}")
    print(f"latency at idle (post -> record in the simulator), {len(latencies)} samples: "
          f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms   floor (one upsert) "
          f"{round_trip * 1000:.0f} ms   p50 ratio {p50 / round_trip:.0f}")
    return 0


# -- --post: one large post, quiet and under a drain ------------------------------------


def post_entities(ids: range, versioned: bool) -> list[dict]:
    """The rows a post of `ids` stores (as shared/events/queue.py writes them)."""
    now = time.time()
    return [{"PartitionKey": "Asset", "RowKey": str(n), "Object": "Asset", "RecordId": str(n),
             "Operation": "upsert", "Attempts": 0, "EnqueuedAt": now, "RetryAt": now,
             **({"Version": "1"} if versioned else {})} for n in ids]


def post_floor(connection_string: str, ids: range, versioned: bool) -> float:
    """Seconds to create the post's rows in transactions of 100, one after another."""
    table = TableServiceClient.from_connection_string(connection_string).create_table(
        "Floor" + uuid.uuid4().hex[:10])
    entities = post_entities(ids, versioned)
    started = time.perf_counter()
    for start in range(0, len(entities), 100):
        table.submit_transaction([("create", entity) for entity in entities[start:start + 100]])
    seconds = time.perf_counter() - started
    table.delete_table()
    return seconds


def timed_post(host: EventHost, ids: range, versioned: bool) -> float:
    body = {"events": [{**event(n), **({"version": 1} if versioned else {})} for n in ids]}
    started = time.perf_counter()
    answer = requests.post(host.host.url("/api/events"), params={"code": host.host.function_key},
                           json=body, timeout=900)
    seconds = time.perf_counter() - started
    assert answer.status_code == 202, answer.text[:500]
    assert answer.json()["stored"] == len(ids), answer.text[:500]
    return seconds


def fill_sqlite_source(path: Path, source, count: int) -> None:
    """Assets 1..count as AssetSource.insert writes them, in one transaction (through ODBC
    with autocommit a row costs a commit: minutes for a few hundred thousand)."""
    with sqlite3.connect(path) as connection:
        connection.executemany(
            f"INSERT INTO {source.table} ({COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((n, source.stamp(BASE), f"Asset {n}", f"SN-{n:08d}", "Installed", 1, 10.5,
              "2024-01-02", f"owner{n}@example.com") for n in range(1, count + 1)))


def app_at(revision: str, workdir: Path) -> Path:
    """The test host's app folder with the app's packages as at `revision` beside it (the
    host imports from the app's folder first)."""
    app_dir = workdir / f"app-{revision.replace('/', '_')}"
    shutil.copytree(APP, app_dir)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", revision, "shared",
                              "activities", "orchestrators"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(app_dir, filter="data")
    return app_dir


def measure_posts(sizes: list[int], backlog: int, baseline: str | None, repeat: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-event-post-"))
    azurite = services.start_azurite(workdir / "azurite", log_file=workdir / "azurite.log")
    sim = start_simulator()
    source = create_asset_source(services.sqlite_odbc_connection_string(workdir / "src.db"),
                                 "sqlite")
    hosts: dict[str, EventHost] = {}
    next_id = 1
    rows: list[tuple[str, str, int, str, float, float]] = []

    def ids(count: int) -> range:
        nonlocal next_id
        taken = range(next_id, next_id + count)
        next_id += count
        return taken

    # Per host: the posts timed and, while draining, a backlog before each of them.
    cases = 2 * len(sizes) * 2 * repeat
    per_host = 100 + 2 * sum(sizes) * 2 * repeat + cases * backlog
    try:
        fill_sqlite_source(workdir / "src.db", source, (2 if baseline else 1) * per_host)
        if baseline is not None:
            (workdir / "before").mkdir()
            hosts[f"before ({baseline})"] = EventHost.start(
                workdir / "before",
                event_env(azurite, sim, source, EVENTS_SAFETY_SCHEDULE="*/5 * * * * *"),
                app=app_at(baseline, workdir))
        (workdir / "after").mkdir()
        hosts["this tree"] = EventHost.start(
            workdir / "after",
            event_env(azurite, sim, source, EVENTS_SAFETY_SCHEDULE="*/5 * * * * *"))
        for host in hosts.values():  # tables, counters, connections: not in the figures
            host.post_until_accepted([event(n) for n in ids(100)])
        for phase in ("quiet", "draining"):
            for size in sizes:
                for versioned, _ in product((False, True), range(repeat)):
                    names = list(hosts)
                    if len(rows) // max(1, len(names)) % 2:
                        names.reverse()  # alternate who goes first
                    for name in names:
                        host = hosts[name]
                        if phase == "quiet":
                            host.wait_until_drained(timeout=1800)
                        else:
                            _keep_draining(host, backlog, ids)
                        post_ids = ids(size)
                        floor = post_floor(azurite.connection_string, post_ids, versioned)
                        seconds = timed_post(host, post_ids, versioned)
                        busy = host.status()["drain"]["runtimeStatus"] in BUSY
                        rows.append((phase, name, size, "versioned" if versioned
                                     else "unversioned", seconds, floor))
                        note = "" if phase == "quiet" or busy else "  (the drain had ended)"
                        print(f"{phase:8} {name:24} {size:6} {rows[-1][3]:11} post "
                              f"{seconds:7.2f} s  floor {floor:6.2f} s  ratio "
                              f"{seconds / floor:5.1f}{note}", flush=True)
    finally:
        for host in hosts.values():
            host.host.stop()
        sim.stop()
        azurite.stop(grace_seconds=1.0)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"medians of {repeat} (post seconds, floor seconds, ratio):")
    for case in dict.fromkeys(row[:4] for row in rows):
        same = [row for row in rows if row[:4] == case]
        seconds = statistics.median(row[4] for row in same)
        floor = statistics.median(row[5] for row in same)
        ratio = statistics.median(row[4] / row[5] for row in same)
        print(f"{case[0]:8} {case[1]:24} {case[2]:6} {case[3]:11} post {seconds:7.2f} s  "
              f"floor {floor:6.2f} s  ratio {ratio:5.1f}")
    return 0


def _keep_draining(host: EventHost, backlog: int, ids) -> None:
    """Make sure a drain runs with a backlog behind it: post one if the queue runs low."""
    status = host.status()
    if status["queue"]["depth"] >= backlog // 2 and status["drain"]["runtimeStatus"] in BUSY:
        return
    chunks = [list(map(event, ids(POST_SIZE))) for _ in range(backlog // POST_SIZE)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(host.post_until_accepted, chunks))
    host.wait_for(lambda body: body["drain"]["runtimeStatus"] in BUSY, timeout=120)


if __name__ == "__main__":
    raise SystemExit(main())
