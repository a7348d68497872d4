"""A 10,000-record instance survives SIGKILLs of the host at random moments.

The tests' step functions log every call per (step, record). After the kills: the final
counts are exact, and a record ran a step twice only where that block-step was in flight
and not yet persisted at a kill: at most max_concurrency block-steps per kill.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

RECORDS = 10_000
BLOCK_SIZE = 100
MAX_CONCURRENCY = 4
KILLS = 5


@pytest.mark.slow
def test_killed_host_resumes_with_exact_counts_and_no_persisted_step_rerun(
        start_batch_host) -> None:
    batch = start_batch_host(BATCH_BLOCKS_PER_GENERATION="10", BATCH_TEST_STEP_DELAY="0.002")
    answer = batch.post("counted", [{"n": n} for n in range(RECORDS)], instanceId="crash")
    assert answer.status_code == 202, answer.text
    chance = random.Random()
    kills = 0
    status = "EXECUTING"
    while kills < KILLS:
        time.sleep(chance.uniform(0.5, 2.0))
        status = batch.result("counted", "crash")["status"]
        if status not in ("EXECUTABLE", "EXECUTING"):
            break
        batch.kill()
        kills += 1
        batch.start_again()
    assert kills == KILLS, f"the instance ended ({status}) before every kill: make it longer"
    result = batch.wait_for_end("counted", "crash", timeout=600)

    failed_a = len(range(0, RECORDS, 97))
    failed_b = len([n for n in range(RECORDS) if n % 1000 == 7 and n % 97])
    assert result["status"] == "SUCCESSFUL"
    assert result["processedRecords"] == RECORDS
    assert result["failedRecords"] == failed_a + failed_b
    assert result["successfulRecords"] == RECORDS - failed_a - failed_b
    steps = {step["stepName"]: step for step in result["steps"]}
    assert steps["a"]["receivedRecords"] == RECORDS
    assert steps["b"]["receivedRecords"] == RECORDS - failed_a
    assert steps["c"]["receivedRecords"] == RECORDS - failed_a - failed_b
    assert steps["d"]["receivedRecords"] == failed_a + failed_b

    calls = batch.calls()
    expected = {"a": RECORDS, "b": RECORDS - failed_a, "c": RECORDS - failed_a - failed_b,
                "d": failed_a + failed_b}
    for step, count in expected.items():
        assert len({index for (name, _, index) in calls if name == step}) == count, step
    rerun = Counter()
    for (step, _, index), times in calls.items():
        if times > 1:
            # Step b runs per group (not per block): key by group-sized slices of records.
            unit = 200 if step == "b" else BLOCK_SIZE
            rerun[(step, index // unit)] += 1
    # Each kill interrupts at most MAX_CONCURRENCY activities, each one step of one block
    # (or one group): only those may run again.
    assert len(rerun) <= KILLS * MAX_CONCURRENCY, sorted(rerun)
