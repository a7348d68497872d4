"""The devhost durable engine on Azurite: timer lateness, activity dispatch, 100-way fan-out.

Measured side by side in one run against the same Azurite:
- the floor: one table upsert round trip (every engine step costs a few of these);
- activity dispatch latency: a chain of 20 no-op activities, time per step (schedule,
  run, deliver the result, replay), and its ratio to the floor; beside it, steadier on a
  shared machine, what a step costs: this process's CPU (the engine, the SDK replaying the
  orchestrator, the storage client), Azurite's CPU, and Azurite's requests by kind (from
  its access log; the status reads this benchmark polls with are left out);
- durable timer lateness: 5 timers 0.5 s apart; how long after `fireAt` the orchestrator
  resumed (`current_utc_datetime` of the resuming episode minus `fireAt`), and its ratio
  to the timer's 500 ms;
- a 100-activity fan-out/fan-in end to end (start to Completed) and its ratio to 100 steps
  of the chain (how much of the sequential cost concurrency saves).

    python benchmarks/devhost_engine.py

Measured (issue 14's engine round; 2 shared cores, load average 0.4-2.8; main and this
branch alternated, medians of 4 runs each): per chained step 15.1 ms on main, 15.2 ms here
(5.6-5.9 x a 2.6-2.7 ms floor); host CPU 10.3 ms on both; Azurite CPU 7.3 / 7.5 ms (its
clock ticks 10 ms: half a millisecond a step); storage requests 2.45-2.5 on both: one
activity result (PUT History: the result takes its work item's row), 1.05 episode commits
(one table transaction each), 0.15-0.25 instance rows (those of ordinary episodes written
as one every 0.1 s) and the instance's start. 100-way fan-out 215 / 216 ms.
Where a step goes (instrumented, not kept): the result's write 2.3 ms, the orchestrator
replayed by the SDK 2.1 ms (mostly dateutil parsing every event's timestamp, so it grows
with the history), the commit's transaction 5.1 ms. The storage client's own CPU is about
1.4 ms a request and 2.9-3.8 ms a transaction (azure-core writes and parses the multipart
body with the email package), Azurite's 1.3-1.8 ms a request. The two round trips left are
those the guarantees need: a result is durable before an episode applies it (in Azure the
result message is queued before the episode runs), and an episode's history is durable
before the work it schedules is dispatched. Handing a result to its episode while its row
was still being written (committing only once it was there) saved about 0.7 ms a step in an
instrumented run and nothing measurable here, so it was not kept. Tried per run as well (this
chain starts new instances): a job's singleton instance, kept in memory after it ended,
started again without reading its history, and the rows of the execution it replaced went
in its first commit; in `sync_end_to_end.py` (2 partitions, 2 worker processes, warm, 6
runs, Azurite's access log) History queries 17 -> 8 and table transactions 55 -> 49, but
host CPU and wall unchanged within noise (0.99 x, 0.99 x): not merged, since a cache of
ended instances is more state to keep right across hosts for no gain a user would see.
Of Azurite's ~70 requests a sync run, ~15 are the engine's; the app's watermark and lock
table takes ~33.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import azure.durable_functions as df  # noqa: E402
from azure.data.tables.aio import TableServiceClient  # noqa: E402

from benchmarks.azurite_log import logged_requests  # noqa: E402
from benchmarks.process_cpu import cpu_seconds  # noqa: E402
from devtools import services  # noqa: E402
from tests.devhost.engine.engine_harness import FunctionTable, running_engine  # noqa: E402

CHAIN = 20
FAN_OUT = 100
TIMERS = 5
TIMER_MS = 500


def chain(context: df.DurableOrchestrationContext):
    for n in range(CHAIN):
        yield context.call_activity("noop", n)
    return CHAIN


def fan_out(context: df.DurableOrchestrationContext):
    results = yield context.task_all([context.call_activity("noop", n) for n in range(FAN_OUT)])
    return len(results)


def timers(context: df.DurableOrchestrationContext):
    lateness = []
    for _ in range(TIMERS):
        fire_at = context.current_utc_datetime + timedelta(milliseconds=TIMER_MS)
        yield context.create_timer(fire_at)
        lateness.append((context.current_utc_datetime - fire_at).total_seconds() * 1000)
    return lateness


async def run_to_completion(engine, name: str) -> tuple[float, str]:
    started = time.perf_counter()
    instance_id = await engine.start_instance(name, None, None)
    while True:
        status = await engine.get_instance(instance_id)
        if status.runtime_status in ("Completed", "Failed"):
            assert status.runtime_status == "Completed", status.output
            return time.perf_counter() - started, status.output
        await asyncio.sleep(0.02)


async def table_round_trip_ms(connection_string: str) -> float:
    async with TableServiceClient.from_connection_string(connection_string) as service:
        table = service.get_table_client("Bench" + uuid.uuid4().hex[:12])
        await table.create_table()
        samples = []
        for n in range(50):
            started = time.perf_counter()
            await table.upsert_entity({"PartitionKey": "p", "RowKey": str(n), "Value": n})
            samples.append((time.perf_counter() - started) * 1000)
        await table.delete_table()
    return statistics.median(samples)


def storage_requests(log: Path, offset: int) -> tuple[Counter[str], int]:
    """Azurite's requests logged since `offset` by method and table (the status reads this
    benchmark polls with left out); the new offset."""
    lines, end = logged_requests(log, offset)
    counts: Counter[str] = Counter()
    for method, name in lines:
        table = "batch" if name == "$batch" else re.sub(r"^T[0-9a-f]{16}", "", name)
        if (method, table) != ("GET", "Instances"):
            counts[f"{method} {table}"] += 1
    return counts, end


async def measure(connection_string: str, azurite_pid: int, access_log: Path) -> None:
    functions = FunctionTable(
        {"chain": chain, "fan_out": fan_out, "timers": timers}, {"noop": lambda n: n}
    )
    floor = await table_round_trip_ms(connection_string)
    async with running_engine(connection_string, functions, max_concurrent_activities=10) as engine:
        await run_to_completion(engine, "chain")  # warm-up
        await asyncio.sleep(0.3)  # the warm-up's last instance row is written
        _, offset = storage_requests(access_log, 0)
        host_cpu, azurite_cpu = time.process_time(), cpu_seconds(azurite_pid, children=False)
        chain_seconds, _ = await run_to_completion(engine, "chain")
        await asyncio.sleep(0.3)  # and this run's
        host_cpu = time.process_time() - host_cpu
        azurite_cpu = cpu_seconds(azurite_pid, children=False) - azurite_cpu
        requests, _ = storage_requests(access_log, offset)
        fan_seconds, fan_output = await run_to_completion(engine, "fan_out")
        assert json.loads(fan_output) == FAN_OUT
        _, timer_output = await run_to_completion(engine, "timers")
    per_step_ms = chain_seconds * 1000 / CHAIN
    lateness = json.loads(timer_output)
    print(f"table upsert round trip (floor):        {floor:8.2f} ms")
    print(f"activity dispatch, per chained step:    {per_step_ms:8.2f} ms"
          f"   = {per_step_ms / floor:6.1f} x floor")
    print(f"  per step: host CPU {host_cpu * 1000 / CHAIN:.2f} ms, Azurite CPU "
          f"{azurite_cpu * 1000 / CHAIN:.2f} ms, storage requests "
          f"{sum(requests.values()) / CHAIN:.2f} ("
          + ", ".join(f"{kind} {count / CHAIN:.2f}" for kind, count in sorted(requests.items()))
          + ")")
    print(f"timer lateness, median of {TIMERS}:           {statistics.median(lateness):8.2f} ms"
          f"   = {statistics.median(lateness) / TIMER_MS:6.3f} x the {TIMER_MS} ms timer"
          f"   (max {max(lateness):.2f} ms)")
    print(f"{FAN_OUT}-activity fan-out end to end:      {fan_seconds * 1000:8.1f} ms"
          f"   = {fan_seconds / (per_step_ms * FAN_OUT / 1000):6.3f} x {FAN_OUT} chained steps")


def main() -> None:
    # The SDK warns on every untyped result it decodes; the figures are what matter here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with tempfile.TemporaryDirectory(prefix="bench-azurite-") as workdir:
        access_log = Path(workdir) / "azurite.log"
        azurite = services.start_azurite(Path(workdir), log_file=access_log, access_log=True)
        try:
            asyncio.run(measure(azurite.connection_string, azurite.process.pid, access_log))
        finally:
            azurite.stop(grace_seconds=1.0)


if __name__ == "__main__":
    main()
