"""Memory of a Bulk API 2.0 load stays flat as the load grows: 20 MB vs 200 MB.

Each size runs in its own process (peak RSS is a high-water mark) against one simulator
running in another process, so only the client's memory is counted. A run writes the
load as CSV with `write_ingest_csv` from a row generator, then `submit_ingest_load` splits
it below the 100 MB upload limit into jobs, uploads each part streamed and closes the
jobs. A third run reads the 20 MB load into memory before uploading it, the contrast that
shows the instruments see a load held in memory. Printed: peak RSS (and its growth over
the logged-in baseline) and tracemalloc's peak during split+upload for each run, and the
ratios (flat memory: near 1 while the data grows 10x).

    python benchmarks/salesforce_upload_memory.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

MB = 1_000_000
SIZES_MB = (20, 200)
COLUMNS = ["External_Id__c", "Name", "Description", "Account.External_Id__c"]


def rows_of_about(total_bytes: int):
    """Rows until about `total_bytes` of CSV, with quotes, commas and non-ASCII in them."""
    written = 0
    index = 0
    while written < total_bytes:
        row = {
            "External_Id__c": f"EXT-{index:09}",
            "Name": f"Account {index}, \"quoted\" in Zürich",
            "Description": "Lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2,
            "Account.External_Id__c": f"PARENT-{index % 1000:04}",
        }
        written += 175  # about the CSV size of one row
        index += 1
        yield row


def measure(size_mb: int, base_url: str, client_id: str, client_secret: str,
            in_memory: bool = False) -> dict:
    import io
    import tracemalloc

    from shared.salesforce import SalesforceClient, SalesforceCredentials, write_ingest_csv

    client = SalesforceClient(SalesforceCredentials(base_url, client_id, client_secret))
    client.login()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as directory:
        load = Path(directory) / "load.csv"
        with load.open("wb") as out:
            rows = write_ingest_csv(rows_of_about(size_mb * MB), COLUMNS, out)
        load_bytes = load.stat().st_size
        written = time.perf_counter()
        # tracemalloc slows Python code down a lot: it watches the upload half only.
        tracemalloc.start()
        if in_memory:
            # The contrast: what reading the load into memory before uploading costs.
            job = client.create_ingest_job("Account", "upsert", "External_Id__c")
            client.upload_job_data(job.id, io.BytesIO(load.read_bytes()))
            jobs = [client.close_job(job.id)]
        else:
            with load.open("rb") as source:
                jobs = client.submit_ingest_load("Account", "upsert", source, "External_Id__c")
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    upload_seconds = time.perf_counter() - written
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for job in jobs:
        client.abort_job(job.id)
        client.delete_job(job.id)
    return {
        "size_mb": size_mb,
        "csv_bytes": load_bytes,
        "rows": rows,
        "jobs": len(jobs),
        "api_calls": client.api_calls,
        "rss_growth_bytes": peak_rss - baseline_rss,
        "peak_rss_bytes": peak_rss,
        "tracemalloc_peak_bytes": traced_peak,
        "seconds": round(elapsed, 1),
        "upload_seconds": round(upload_seconds, 1),
        "in_memory": in_memory,
    }


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--measure":
        size, base_url, client_id, secret = int(sys.argv[2]), *sys.argv[3:6]
        in_memory = sys.argv[6] == "in-memory"
        print(json.dumps(measure(size, base_url, client_id, secret, in_memory)))
        return 0

    from sfsim.settings import SimSettings
    from sfsim.testing import start_simulator

    # Jobs are closed but never processed: the benchmark is about the client's side.
    settings = SimSettings(job_delay_seconds=3600)
    with start_simulator(settings, in_subprocess=True) as sim:
        results = []
        runs = [(size, "streamed") for size in SIZES_MB] + [(SIZES_MB[0], "in-memory")]
        for size, mode in runs:
            completed = subprocess.run(
                [sys.executable, __file__, "--measure", str(size), sim.base_url,
                 sim.client_id, sim.client_secret, mode],
                check=True, capture_output=True, text=True, cwd=REPO_ROOT,
                env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            )
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            sim.reset()
    small, large, in_memory = results
    for result in results:
        mode = "read into memory" if result["in_memory"] else "streamed"
        print(
            f"{result['size_mb']:>4} MB load, {mode:>16}: {result['csv_bytes'] / MB:6.1f} MB "
            f"CSV, {result['rows']:>9,} rows, {result['jobs']} job(s), {result['api_calls']:>2} "
            f"API calls, {result['seconds']:5.1f} s ({result['upload_seconds']:4.1f} s "
            f"split+upload); peak RSS {result['peak_rss_bytes'] / MB:6.1f} MB "
            f"(+{result['rss_growth_bytes'] / MB:5.1f} MB over the logged-in baseline), "
            f"tracemalloc peak {result['tracemalloc_peak_bytes'] / MB:6.2f} MB"
        )
    data_ratio = large["csv_bytes"] / small["csv_bytes"]
    rss_ratio = large["peak_rss_bytes"] / small["peak_rss_bytes"]
    traced_ratio = large["tracemalloc_peak_bytes"] / small["tracemalloc_peak_bytes"]
    print(f"data ratio 200 MB / 20 MB: {data_ratio:.1f}x")
    print(f"streamed, 200 MB / 20 MB: peak RSS {rss_ratio:.2f}x, tracemalloc peak "
          f"{traced_ratio:.2f}x")
    print(f"20 MB read into memory / streamed: peak RSS "
          f"{in_memory['peak_rss_bytes'] / small['peak_rss_bytes']:.2f}x, tracemalloc peak "
          f"{in_memory['tracemalloc_peak_bytes'] / small['tracemalloc_peak_bytes']:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
