"""A host process for the crash test: runs the engine until the instance finishes.

python -m tests.devhost.engine.crash_worker CONNECTION HUB INSTANCE JOURNAL [--start]
    [--flow NAME]

Every activity writes `start <name>` and `end <name>` lines to JOURNAL, so the test can
tell which ran and how often. The `slow` activity hangs on its first run (the test kills
this process then) and is quick when it runs again. `--start` starts the orchestrator
`--flow` names (`crash_flow` unless named).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df

from tests.devhost.engine.engine_harness import FunctionTable, running_engine

CONNECTION, HUB, INSTANCE, JOURNAL = sys.argv[1:5]
journal = Path(JOURNAL)


def note(line: str) -> None:
    with journal.open("a") as handle:
        handle.write(line + "\n")
        handle.flush()


def quick(name: str) -> str:
    note(f"start {name}")
    note(f"end {name}")
    return name


async def slow(name: str) -> str:
    first_run = "start slow" not in journal.read_text()
    note("start slow")
    if first_run:
        await asyncio.sleep(600)
    note("end slow")
    return name


def crash_flow(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("quick", "a")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    middle = yield context.task_all([context.call_activity("slow", "b"), timer])
    last = yield context.call_activity("quick", "c")
    return [first, middle[0], last]


def in_sequence(context: df.DurableOrchestrationContext):
    """Three quick activities one after another: episodes 1-4, the fourth ends it."""
    results = []
    for name in ("a", "b", "c"):
        results.append((yield context.call_activity("quick", name)))
    return results


async def main() -> None:
    # The engine's lease decisions go to stderr, where the crash test reads them.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("devhost.engine").setLevel(logging.INFO)
    functions = FunctionTable({"crash_flow": crash_flow, "in_sequence": in_sequence},
                              {"quick": quick, "slow": slow})
    flow = sys.argv[sys.argv.index("--flow") + 1] if "--flow" in sys.argv else "crash_flow"
    async with running_engine(CONNECTION, functions, task_hub=HUB) as engine:
        if "--start" in sys.argv:
            await engine.start_instance(flow, INSTANCE, None)
        while True:
            status = await engine.get_instance(INSTANCE)
            if status is not None and status.runtime_status in ("Completed", "Failed"):
                print(json.dumps({"status": status.runtime_status,
                                  "output": json.loads(status.output)}), flush=True)
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
