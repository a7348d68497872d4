"""Batch jobs on the local host: records/s through a 3-step job with an aggregator.

Started the way users start it (POST /api/batch-jobs/{job} on the local host over Azurite,
two instances per run, then polling the result until both ended), for block sizes 10, 100
and 1000 and both scheduling strategies; beside the floor measured in the same run: the
same step functions called in a plain loop in this process. Also the history size of an
instance's last generation (continue_as_new keeps it bounded) for 1k and 10k records.

    python benchmarks/batch_throughput.py [records per run, default 4000]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402

from benchmarks.batch_steps import (  # noqa: E402
    BLOCK_SIZES,
    accept_group,
    bench_job_name,
    bench_records,
    check,
    to_contact,
)
from devhost.testing import RunningHost, start_host  # noqa: E402
from devtools import services  # noqa: E402
from shared.batch import BatchRecord, SchedulingStrategy, batch_durable_id  # noqa: E402

ENDED = ("SUCCESSFUL", "FAILED_PROCESS_RECORDS", "FAILED", "STOPPED")


def floor_rate(records: list[dict]) -> float:
    started = time.perf_counter()
    group: list[BatchRecord] = []
    for index, payload in enumerate(records):
        record = BatchRecord("floor", index, payload)
        check(record)
        group.append(BatchRecord("floor", index, to_contact(record)))
        if len(group) == 200:
            accept_group(group)
            group = []
    accept_group(group)
    return len(records) / (time.perf_counter() - started)


def run_instances(host: RunningHost, job: str, records: list[dict], instances: int = 2) -> float:
    key = {"code": host.function_key}
    share = len(records) // instances
    ids = [uuid.uuid4().hex[:12] for _ in range(instances)]
    started = time.perf_counter()
    for number, instance in enumerate(ids):
        body = json.dumps(records[number * share:(number + 1) * share])
        answer = requests.post(host.url(f"/api/batch-jobs/{job}"), data=body,
                               params={**key, "instanceId": instance},
                               headers={"Content-Type": "application/json"}, timeout=300)
        answer.raise_for_status()
    for instance in ids:
        while True:
            result = requests.get(host.url(f"/api/batch-jobs/{job}/{instance}"), params=key,
                                  timeout=60).json()
            if result.get("status") in ENDED:
                assert result["processedRecords"] == share, result
                break
            time.sleep(0.05)
    return share * instances / (time.perf_counter() - started)


def last_generation_history_bytes(host: RunningHost, job: str, records: list[dict]) -> int:
    instance = uuid.uuid4().hex[:12]
    run_instances_one = requests.post(
        host.url(f"/api/batch-jobs/{job}"), data=json.dumps(records),
        params={"code": host.function_key, "instanceId": instance},
        headers={"Content-Type": "application/json"}, timeout=300)
    run_instances_one.raise_for_status()
    while requests.get(host.url(f"/api/batch-jobs/{job}/{instance}"),
                       params={"code": host.function_key}, timeout=60
                       ).json().get("status") not in ENDED:
        time.sleep(0.1)
    status = requests.get(
        host.url(f"/runtime/webhooks/durabletask/instances/{batch_durable_id(job, instance)}"),
        params={"code": host.master_key, "showHistory": "true"}, timeout=60).json()
    return len(json.dumps(status.get("historyEvents") or []))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    records = bench_records(count)
    workdir = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    azurite = services.start_azurite(workdir / "azurite", log_file=workdir / "azurite.log")
    app_dir = workdir / "app"
    shutil.copytree(REPO_ROOT / "benchmarks" / "batch_app", app_dir)
    host_json = json.loads((app_dir / "host.json").read_text())
    host_json["extensions"]["durableTask"]["hubName"] = "BatchBench" + uuid.uuid4().hex[:8]
    (app_dir / "host.json").write_text(json.dumps(host_json))
    host = start_host(app_dir, env={"AzureWebJobsStorage": azurite.connection_string,
                                    "BATCH_CONTAINER": "batch-bench",
                                    "BATCH_TURN_CHECK_INTERVAL": "2",
                                    "BATCH_BLOCKS_PER_GENERATION": "20"},
                      log_path=workdir / "host.log")
    try:
        floor = max(floor_rate(records) for _ in range(3))
        print(f"floor: the step functions in a plain loop: {floor:,.0f} records/s")
        print(f"{'block':>6} {'strategy':>19} {'records/s':>10} {'ratio to floor':>15}")
        for size in BLOCK_SIZES:
            for strategy in SchedulingStrategy:
                rate = run_instances(host, bench_job_name(size, strategy), records)
                print(f"{size:>6} {strategy.value:>19} {rate:>10,.0f} {rate / floor:>15.4f}")
        job = bench_job_name(10, SchedulingStrategy.ROUND_ROBIN)
        small = last_generation_history_bytes(host, job, bench_records(1000))
        large = last_generation_history_bytes(host, job, bench_records(10_000))
        print(f"history of the last generation (block size 10, 20 blocks a generation): "
              f"1k records {small:,} bytes, 10k records {large:,} bytes, "
              f"ratio {large / small:.2f}; {small:,} bytes per 1k records at 1k")
    finally:
        host.stop()
        azurite.stop(grace_seconds=1.0)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
