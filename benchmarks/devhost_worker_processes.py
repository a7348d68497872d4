"""FUNCTIONS_WORKER_PROCESS_COUNT on the local host: CPU-bound fan-out and per-call cost.

The same app (benchmarks/worker_app) on one Azurite, started with `python -m devhost` as
users start it, twice at once (each its own task hub): one host with 1 worker process
(activities in the host process), one with 2. Rounds alternate between them and the
floors, so machine load hits all alike (compare ratios, never absolute times):
- floors: one `spin` loop (pure Python, ~0.5 s) in this process, two loops on two threads
  of this process (one GIL: the best one worker process can do) and two loops in two bare
  processes at once (what two cores give right now);
- a fan-out of 2 `spin` activities, start to Completed, as ratios to those floors (1
  process: ~2x one loop, both loops share one GIL; 2 processes: near the two-process
  floor), and the paired ratio of the two hosts' wall times;
- the host's start, `python -m devhost` to `Running` (2 processes import the app twice
  more);
- a chain of trivial activities: time per step (schedule, run, result, replay) and the
  mean `Duration` of the trivial activity's execution log lines (what crossing to a worker
  adds to one invocation).

On a machine whose cores are busy with other work, two processes gain little over one
GIL: read the host's 1-process / 2-process ratio beside the bare two-threads /
two-processes ratio of the same run, not against 2x.

    python benchmarks/devhost_worker_processes.py
"""

from __future__ import annotations

import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = Path(__file__).resolve().parent / "worker_app"
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(APP))

from devhost.testing import RunningHost, start_host  # noqa: E402
from devtools import services  # noqa: E402
from function_app import spin_loop  # noqa: E402

TARGET_SECONDS = 0.5
ROUNDS = 5
CHAIN = 30
DURATION = re.compile(r"Executed 'Functions\.trivial' \(Succeeded, .*Duration=(\d+)ms")
SPIN_DURATION = re.compile(r"Executed 'Functions\.spin' \(Succeeded, .*Duration=(\d+)ms")


def timed_spin(iterations: int) -> float:
    started = time.perf_counter()
    spin_loop(iterations)
    return time.perf_counter() - started


def calibrated_iterations() -> int:
    """Iterations of `spin_loop` that take about TARGET_SECONDS here."""
    iterations = 200_000
    while (elapsed := timed_spin(iterations)) < 0.1:
        iterations *= 4
    return int(iterations * TARGET_SECONDS / elapsed)


def two_processes_seconds(pool: ProcessPoolExecutor, iterations: int) -> float:
    started = time.perf_counter()
    list(pool.map(spin_loop, [iterations, iterations]))
    return time.perf_counter() - started


def two_threads_seconds(iterations: int) -> float:
    """Two loops on two threads of this process: one GIL, what one worker process gives."""
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(spin_loop, [iterations, iterations]))
    return time.perf_counter() - started


def run_seconds(host: RunningHost, orchestrator: str, payload: object) -> float:
    """From the start request to the host's log line of the episode that completed it (the
    status is polled slowly: fast polling would take CPU from the activities measured)."""
    started = time.time()
    answer = requests.post(host.url(f"/api/start/{orchestrator}"), json=payload, timeout=10)
    body = answer.json()
    while True:
        status = requests.get(body["statusQueryGetUri"], timeout=10).json()
        if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            assert status["runtimeStatus"] == "Completed", status
            break
        time.sleep(0.25)
    completed = re.search(
        rf"^\[([^\]]+)Z\] Executed 'Functions\.{orchestrator}' \(Succeeded, "
        rf"Instance={body['id']},.*: orchestration completed$", host.output(), re.MULTILINE)
    assert completed, f"no completion line for {body['id']}"
    ended = datetime.fromisoformat(completed.group(1)).replace(tzinfo=UTC).timestamp()
    return ended - started


def chain_figures(host: RunningHost) -> tuple[float, float]:
    """(ms a chained step, mean execution Duration in ms) of a chain of trivial activities."""
    before = len(DURATION.findall(host.output()))
    seconds = run_seconds(host, "trivial_chain", CHAIN)
    durations = [int(ms) for ms in DURATION.findall(host.output())[before:]]
    return seconds * 1000 / CHAIN, statistics.mean(durations)


def main() -> None:
    iterations = calibrated_iterations()
    fan_out = {"iterations": iterations, "activities": 2}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as workdir, \
            ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        two_processes_seconds(pool, 1000)  # both pool processes up
        azurite = services.start_azurite(Path(workdir))
        hosts: dict[int, RunningHost] = {}
        start_seconds: dict[int, float] = {}
        try:
            for count in (1, 2):
                started = time.perf_counter()
                hosts[count] = start_host(APP, log_path=Path(workdir) / f"host-{count}.log", env={
                    "AzureWebJobsStorage": azurite.connection_string,
                    "FUNCTIONS_WORKER_PROCESS_COUNT": str(count),
                    "WORKER_BENCH_HUB": f"WorkerBench{count}",
                })
                start_seconds[count] = time.perf_counter() - started
            spins_before = {count: len(SPIN_DURATION.findall(host.output()))
                            for count, host in hosts.items()}
            for host in hosts.values():  # warm-up
                run_seconds(host, "cpu_fan_out", {"iterations": 1000, "activities": 2})
                run_seconds(host, "trivial_chain", 3)
            one_loop, two_loops, two_threads = [], [], []
            fan_outs: dict[int, list[float]] = {1: [], 2: []}
            chains: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for _ in range(ROUNDS):
                one_loop.append(timed_spin(iterations))
                two_loops.append(two_processes_seconds(pool, iterations))
                two_threads.append(two_threads_seconds(iterations))
                for count, host in hosts.items():
                    fan_outs[count].append(run_seconds(host, "cpu_fan_out", fan_out))
                    chains[count].append(chain_figures(host))
            spin_ms = {count: statistics.median(
                int(ms) for ms in SPIN_DURATION.findall(host.output())[spins_before[count] + 2:])
                for count, host in hosts.items()}
        finally:
            for host in hosts.values():
                host.stop()
            azurite.stop(grace_seconds=1.0)
    floor, parallel_floor = statistics.median(one_loop), statistics.median(two_loops)
    print(f"host start to Running, 1 / 2 worker processes:   {start_seconds[1]:6.2f} s / "
          f"{start_seconds[2]:6.2f} s = {start_seconds[2] / start_seconds[1]:5.2f} x")
    print(f"one spin loop in this process (floor):            {floor * 1000:8.1f} ms")
    print(f"two spin loops in two bare processes:             {parallel_floor * 1000:8.1f} ms"
          f"   = {parallel_floor / floor:5.2f} x floor")
    threads_floor = statistics.median(two_threads)
    print(f"two spin loops on two threads of one process:     {threads_floor * 1000:8.1f} ms"
          f"   = {threads_floor / floor:5.2f} x floor")
    for count, samples in fan_outs.items():
        seconds = statistics.median(samples)
        print(f"fan-out of 2 spin activities, {count} worker process(es): {seconds * 1000:8.1f} ms"
              f"   = {seconds / floor:5.2f} x floor, {seconds / parallel_floor:5.2f} x two "
              "bare processes")
    for count, milliseconds in spin_ms.items():
        print(f"one spin activity's Duration, {count} worker process(es): {milliseconds:8.1f} ms"
              f"   = {milliseconds / 1000 / floor:5.2f} x floor")
    paired = [one / two for one, two in zip(fan_outs[1], fan_outs[2], strict=True)]
    print(f"fan-out wall time, 1 process / 2 processes (median of {ROUNDS} pairs): "
          f"{statistics.median(paired):5.2f} x   (bare: two threads / two processes "
          f"{statistics.median(t / p for t, p in zip(two_threads, two_loops, strict=True)):5.2f}"
          " x)")
    for count, figures in chains.items():
        step = statistics.median(step for step, _ in figures)
        duration = statistics.median(duration for _, duration in figures)
        print(f"trivial activity, {count} worker process(es): {step:6.1f} ms a chained step, "
              f"{duration:5.1f} ms mean execution Duration")
    step_ratio = statistics.median(
        two[0] / one[0] for one, two in zip(chains[1], chains[2], strict=True))
    print(f"chained step, 2 processes / 1 process (median of {ROUNDS} pairs): {step_ratio:5.2f} x")


if __name__ == "__main__":
    main()
