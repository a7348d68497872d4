"""End-to-end sync throughput against the bare pyodbc floor, and peak memory vs rows.

Source: PostgreSQL through psqlODBC, an asset changes table shaped like seed 000's view
(9 columns, three rows per timestamp), index on (ChangeTimestamp, Asset_ID). State:
Azurite. Printed, all measured in this one run:

1. the floor: a bare pyodbc fetch of the same rows (`fetchmany(5000)`), rows/s;
2. the sync pipeline (keyset page -> mask -> map -> sink -> ETag checkpoint in Table
   Storage, pages read ahead, exactly as the page activities run) with a sink that accepts
   everything, at 500 and 5000 rows a page: rows/s and the ratio to the floor;
3. the same with the Salesforce simulator as the sink (sObject Collections, 200 a call);
4. peak RSS of the pipeline at 100k and 1M rows, each in its own process: memory stays
   flat because a run holds one page at a time;
5. the same for a backlog run (`--backlog-memory 1`, the default): staged in parts of
   50,000 rows on temporary files, each part's Bulk API job submitted to the simulator
   while the next is read, polled until the jobs ended, then finished (dead letters,
   watermark). A run with default settings and more than 10,000 changed rows is one.

    python benchmarks/sync_throughput_memory.py [--rows 100000]
        [--memory-sizes 100000,1000000] [--backlog-memory 1] [--memory-only]
        [--memory-also-from CHECKOUT]

`--memory-also-from` measures another checkout's runs (e.g. a worktree of main sharing
this one's .venv) beside this one's, on the same tables, alternating which goes first.

Measured (issue 14's third round, 2 shared cores under heavy load): pages 88.8 MB at 100k
rows, 91.6 MB at 1M (1.03x; the 1M run took 143 s with tracemalloc on); backlog runs 104.9
MB vs 142.8 MB (1.36x) while keys.csv went up in one put, 103.4 MB vs 105.8 MB (1.02x) with
the keys in blobs of 50,000 rows (the 1M backlog run took 308 s). Issue 14's fourth
round, paired against main on the same tables (5 runs at 100k, 3 at 1M each): backlog
runs with the staged records' hashes in a growing table of 8-byte slots 109.4 MB vs
133.7 MB (1.22x), in one table of 4-byte fingerprints sized for the round 112.1 MB vs
116.1 MB (1.04x, 1.01x to 1.05x); rows/s medians 5,997 vs 6,519 at 100k, 5,962 vs 5,958
at 1M (the spread, ±25 %, is the shared machine's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from benchmarks.asset_source import bare_fetch, load_assets  # noqa: E402
from devtools import services  # noqa: E402
from shared.sync.asset_changes import COLUMNS, asset_record  # noqa: E402
from shared.sync.job import SalesforceSinkSpec, SourceSpec, SyncJob  # noqa: E402
from shared.sync.messages import RunOutcome, RunTotals  # noqa: E402
from shared.sync.pages import sync_pages  # noqa: E402
from shared.sync.run import begin_run, end_run  # noqa: E402
from shared.sync.sinks import Delivery, SalesforceSink  # noqa: E402
from shared.sync.state import SyncState  # noqa: E402


class AcceptingSink:
    """Accepts every page: isolates the pipeline's own cost from the target's."""

    def deliver(self, records):
        return Delivery(len(records))


def job_for(connection_string: str, table: str, page_size: int) -> SyncJob:
    return SyncJob(
        name="asset-changes-bench",
        source=SourceSpec(
            connection_string=connection_string, relation=table,
            cursor_column="ChangeTimestamp", cursor_kind="timestamp",
            key_columns=("Asset_ID",), columns=COLUMNS, initial_cursor=datetime(1900, 1, 1),
            lag=timedelta(0), dialect="postgresql",
        ),
        map_record=asset_record, masked_fields=("Contact_Email",),
        sink=SalesforceSinkSpec("Asset", "External_Id__c"),
        schedule_setting="SYNC_BENCH_SCHEDULE", page_size=page_size,
        max_run_time=timedelta(hours=2), min_interval=timedelta(0),
    )


def fresh_state(storage: str) -> SyncState:
    suffix = uuid.uuid4().hex[:10]
    return SyncState(TableServiceClient.from_connection_string(storage),
                     f"W{suffix}", f"R{suffix}", f"D{suffix}")


def run_pipeline(job: SyncJob, state: SyncState, sink) -> int:
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC)
    begun = begin_run(job, state, run_id, started)
    rows = 0
    while True:
        page = sync_pages(job, state, sink, run_id, begun.upper_bound)
        rows += page.rows
        if page.done:
            break
    end_run(job, state, run_id, started, RunOutcome.SUCCEEDED, RunTotals(rows=rows))
    return rows


def rate(function, *args) -> tuple[int, float]:
    start = time.perf_counter()
    rows = function(*args)
    return rows, rows / (time.perf_counter() - start)


def high_water_kb() -> int:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it starts afresh at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_backlog(job: SyncJob, state: SyncState, config: dict[str, str]) -> int:
    """A backlog run as its activities run it: stage (parts submitted to the simulator's
    Bulk API as they fill), poll until the jobs ended, finish (dead letters, watermark)."""
    from azure.storage.blob import BlobServiceClient

    from shared.bulkload.jobs import poll_jobs
    from shared.salesforce import SalesforceClient, SalesforceCredentials
    from shared.sync.backlog import backlog_store
    from shared.sync.backlog_finish import finish_backlog
    from shared.sync.backlog_staging import stage_backlog

    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC)
    begun = begin_run(job, state, run_id, started)
    assert begun.backlog and begun.upper_bound is not None
    store = backlog_store(BlobServiceClient.from_connection_string(config["storage"]),
                          "bench-backlog", job.name, run_id)
    with SalesforceClient(SalesforceCredentials(
            login_url=config["login_url"], client_id=config["client_id"],
            client_secret=config["client_secret"])) as client:
        staged = stage_backlog(job, state, store, client, run_id, begun.upper_bound)
        jobs = list(staged.jobs)
        while not all(snapshot.ended for snapshot in jobs):
            time.sleep(0.5)
            jobs = poll_jobs(client, [snapshot.id for snapshot in jobs])
        finished = finish_backlog(job, state, store, client, run_id, staged, jobs)
    end_run(job, state, run_id, started, RunOutcome.SUCCEEDED, finished.totals)
    return finished.totals.delivered


def memory_child() -> None:
    """In its own process: one run over the table (pages into a sink that accepts
    everything, or the Bulk API backlog mode into the simulator); prints rows and peak
    memory."""
    import tracemalloc

    config = json.loads(os.environ["BENCH_CONFIG"])
    job = job_for(config["connection"], config["table"], config["page_size"])
    state = fresh_state(config["storage"])
    baseline = high_water_kb()
    tracemalloc.start()
    if config.get("login_url"):
        rows = run_backlog(dataclasses.replace(job, backlog_threshold=10_000), state, config)
    else:
        rows = run_pipeline(job, state, AcceptingSink())
    _, traced_peak = tracemalloc.get_traced_memory()
    print(json.dumps({"rows": rows, "peak_kb": high_water_kb(), "baseline_kb": baseline,
                      "traced_peak_kb": traced_peak // 1024}))


def measure_memory(source: str, azurite: services.Azurite, sizes: list[int],
                   salesforce: dict[str, str], checkouts: list[Path]) -> None:
    """Peak RSS of one run per size and checkout, each in a process of its own, and their
    ratio. With a second checkout (e.g. a worktree of main), both run on the same table,
    their order alternating from one size to the next."""
    peaks: dict[Path, dict[int, int]] = {checkout: {} for checkout in checkouts}
    for index, size in enumerate(sizes):
        load_assets(source, "bench_memory", size)
        for checkout in checkouts if index % 2 == 0 else checkouts[::-1]:
            config = {"connection": source, "table": "bench_memory", "page_size": 1000,
                      "storage": azurite.connection_string, **salesforce}
            started = time.perf_counter()
            child = subprocess.run(
                [sys.executable, str(checkout / "benchmarks" / Path(__file__).name),
                 "--memory-child"], check=True, capture_output=True, text=True,
                cwd=checkout, env={**os.environ, "BENCH_CONFIG": json.dumps(config)},
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            assert result["rows"] == size, result
            peaks[checkout][size] = result["peak_kb"]
            elapsed = time.perf_counter() - started
            label = f" [{checkout.name}]" if len(checkouts) > 1 else ""
            print(f"  {size:>9,} rows{label}: peak RSS {result['peak_kb'] / 1024:7.1f} MB "
                  f"(before the run {result['baseline_kb'] / 1024:.1f} MB), "
                  f"Python allocations peak {result['traced_peak_kb'] / 1024:.1f} MB, "
                  f"{elapsed:.0f} s, {size / elapsed:,.0f} rows/s")
    for checkout, by_size in peaks.items():
        ordered = sorted(by_size)
        if len(ordered) >= 2:
            label = f" [{checkout.name}]" if len(checkouts) > 1 else ""
            print(f"  peak RSS ratio {ordered[-1]:,} / {ordered[0]:,} rows{label}: "
                  f"{by_size[ordered[-1]] / by_size[ordered[0]]:.2f} "
                  f"(rows x{ordered[-1] / ordered[0]:.0f})")


def measure_throughput(source: str, azurite: services.Azurite, simulator, rows_total: int,
                       salesforce_rows: int) -> None:
    """The floor, the pipeline into an accepting sink at two page sizes, and into the
    simulator: rows/s and their ratios, all in this run."""
    load_assets(source, "bench_assets", rows_total)
    print(f"source: PostgreSQL via psqlODBC, {rows_total:,} rows; state: Azurite")
    bare_fetch(source, "bench_assets")  # warm the cache for both sides
    _, floor = rate(bare_fetch, source, "bench_assets")
    print(f"  bare pyodbc fetchmany(5000) floor: {floor:>10,.0f} rows/s")
    for page_size in (500, 5000):
        job = job_for(source, "bench_assets", page_size)
        rows, speed = rate(run_pipeline, job, fresh_state(azurite.connection_string),
                           AcceptingSink())
        assert rows == rows_total, rows
        print(f"  sync pipeline, {page_size:>5}-row pages, accepting sink: "
              f"{speed:>10,.0f} rows/s  ({speed / floor:.2f} x floor)")

    load_assets(source, "bench_assets_sf", salesforce_rows)
    from shared.salesforce import SalesforceClient, SalesforceCredentials

    client = SalesforceClient(SalesforceCredentials(
        login_url=simulator.login_url, client_id=simulator.client_id,
        client_secret=simulator.client_secret))
    _, sf_floor = rate(bare_fetch, source, "bench_assets_sf")
    job = job_for(source, "bench_assets_sf", 1000)
    rows, speed = rate(run_pipeline, job, fresh_state(azurite.connection_string),
                       SalesforceSink(client, "Asset", "External_Id__c"))
    assert len(simulator.records("Asset")) == salesforce_rows
    print(f"  sync pipeline -> Salesforce simulator ({rows:,} rows, 1000-row pages): "
          f"{speed:>8,.0f} rows/s  ({speed / sf_floor:.3f} x floor {sf_floor:,.0f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--salesforce-rows", type=int, default=20_000)
    parser.add_argument("--memory-sizes", default="100000,1000000")
    parser.add_argument("--backlog-memory", type=int, default=1,
                        help="also the peak RSS of backlog runs (Bulk API) at those sizes")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak RSS runs, not the throughput ones")
    parser.add_argument("--memory-also-from", type=Path, default=None,
                        help="another checkout (e.g. a worktree of main) whose runs are "
                             "measured beside this one's, on the same tables")
    arguments = parser.parse_args()
    checkouts = [REPO_ROOT] + ([arguments.memory_also_from.resolve()]
                               if arguments.memory_also_from else [])

    postgres = services.start_postgres()
    azurite = services.start_azurite()
    from sfsim.testing import start_simulator

    simulator = start_simulator(in_subprocess=True)
    try:
        source = postgres.odbc_connection_string
        if not arguments.memory_only:
            measure_throughput(source, azurite, simulator, arguments.rows,
                               arguments.salesforce_rows)
        sizes = [int(text) for text in arguments.memory_sizes.split(",")]
        print("peak memory of one run (own process, 1000-row pages, accepting sink):")
        measure_memory(source, azurite, sizes, {}, checkouts)
        if arguments.backlog_memory:
            simulator.reset()
            print("peak memory of one backlog run (own process, Bulk API 2.0 jobs of "
                  "50,000 rows into the simulator):")
            measure_memory(source, azurite, sizes, {
                "login_url": simulator.login_url, "client_id": simulator.client_id,
                "client_secret": simulator.client_secret}, checkouts)
    finally:
        simulator.stop()
        azurite.stop(grace_seconds=1)
        postgres.stop()


if __name__ == "__main__":
    if "--memory-child" in sys.argv:
        memory_child()
    else:
        main()
