"""The on-complete hook runs until one attempt ended, then never again for the instance
(shared/batch/complete.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from activities.batch import INSTANCE_FINISHED
from shared.batch.complete import run_on_complete_once
from shared.batch.store import InstanceFolder, MemoryBlobStore
from shared.crash_points import CRASH_EXIT_CODE, CRASH_SETTING

FOLDER = InstanceFolder("job", "i1")
RESULT = {"batchJobInstanceId": "i1", "status": "SUCCESSFUL"}


class Crash(BaseException):
    """What a process killed inside the hook looks like to the code around it."""


class Hook:
    def __init__(self, fails: bool = False, crashes: int = 0) -> None:
        self.attempts: list[int] = []
        self.fails = fails
        self.crashes = crashes

    def __call__(self, result: Mapping[str, Any]) -> None:
        self.attempts.append(result["onCompleteAttempt"])
        assert result["status"] == "SUCCESSFUL"
        if len(self.attempts) <= self.crashes:
            raise Crash()
        if self.fails:
            raise RuntimeError("the report could not be mailed")


def test_a_redelivered_finish_does_not_call_the_hook_again() -> None:
    store, hook = MemoryBlobStore.empty(), Hook()
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is False
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is False
    assert hook.attempts == [1]


def test_a_failed_hook_is_not_retried_and_stays_failed() -> None:
    store, hook = MemoryBlobStore.empty(), Hook(fails=True)
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is True
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is True
    assert hook.attempts == [1]


def test_a_crash_inside_the_hook_calls_it_again_with_the_attempt_number() -> None:
    store, hook = MemoryBlobStore.empty(), Hook(crashes=2)
    for _ in range(2):
        with pytest.raises(Crash):
            run_on_complete_once(store, FOLDER, hook, RESULT)
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is False
    assert run_on_complete_once(store, FOLDER, hook, RESULT) is False
    assert hook.attempts == [1, 2, 3]


def test_each_instance_gets_its_own_hook_call() -> None:
    store, hook = MemoryBlobStore.empty(), Hook()
    run_on_complete_once(store, FOLDER, hook, RESULT)
    run_on_complete_once(store, InstanceFolder("job", "i2"), hook,
                         {**RESULT, "batchJobInstanceId": "i2"})
    assert hook.attempts == [1, 1]


def test_a_crash_after_the_final_row_runs_the_hook_once_on_the_host(start_batch_host) -> None:
    batch = start_batch_host(**{CRASH_SETTING: INSTANCE_FINISHED})
    assert batch.post("hooked", [{"n": n} for n in range(12)], instanceId="h").status_code \
        == 202
    assert batch.host.process.wait(timeout=120) == CRASH_EXIT_CODE  # died after the hook
    del batch.env[CRASH_SETTING]
    batch.start_again()
    result = batch.wait_for_end("hooked", "h")
    assert (result["status"], result["failedOnCompletePhase"]) == ("SUCCESSFUL", False)
    # The finish activity ran again after the restart; the hook did not.
    assert (batch.log_dir / "hook.log").read_text().split() == ["h,1"]
