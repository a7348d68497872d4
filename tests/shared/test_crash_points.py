"""A crash point ends the process only when armed, with its own exit code and a log line; a
fault point raises a storage failure only when armed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.crash_points import (
    CRASH_EXIT_CODE,
    CRASH_SETTING,
    FAULT_SETTING,
    InjectedFault,
    fault_point,
)
from shared.dependency_failures import STORAGE_UNAVAILABLE, classify_failure

SCRIPT = (
    "from shared.crash_points import crash_point\n"
    "crash_point('demo.step.before')\n"
    "print('survived', flush=True)\n"
)


def _run(armed: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != CRASH_SETTING}
    if armed is not None:
        env[CRASH_SETTING] = armed
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_an_armed_point_ends_the_process_there() -> None:
    result = _run("other.point, demo.step.before")
    assert result.returncode == CRASH_EXIT_CODE
    assert "survived" not in result.stdout
    assert "crash point demo.step.before reached" in result.stderr


def test_an_unarmed_point_does_nothing() -> None:
    assert _run(None).stdout == "survived\n"
    assert _run("demo.step.after").stdout == "survived\n"


def test_a_point_armed_with_a_count_ends_the_process_the_nth_time() -> None:
    env = {key: value for key, value in os.environ.items() if key != CRASH_SETTING}
    script = ("from shared.crash_points import crash_point\n"
              "for step in range(5):\n"
              "    print(step, flush=True)\n"
              "    crash_point('demo.step.before')\n")
    result = subprocess.run([sys.executable, "-c", script],
                            env={**env, CRASH_SETTING: "demo.step.before@3"},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == CRASH_EXIT_CODE
    assert result.stdout.split() == ["0", "1", "2"]


def test_an_armed_fault_point_raises_a_storage_failure_from_the_nth_time(monkeypatch) -> None:
    monkeypatch.setenv(FAULT_SETTING, "other.point, demo.fault.counted@2")
    fault_point("demo.fault.counted")  # the first time passes
    for _ in range(2):
        with pytest.raises(InjectedFault, match=r"fault point demo\.fault\.counted reached"):
            fault_point("demo.fault.counted")
    # Answered as Azure Storage failing, the failure the point stands for.
    assert classify_failure(InjectedFault("demo")) is STORAGE_UNAVAILABLE


def test_an_unarmed_fault_point_does_nothing(monkeypatch) -> None:
    monkeypatch.delenv(FAULT_SETTING, raising=False)
    fault_point("demo.fault.unarmed")
    monkeypatch.setenv(FAULT_SETTING, "demo.fault.other")
    fault_point("demo.fault.unarmed")
    monkeypatch.setenv(CRASH_SETTING, "demo.fault.unarmed")  # a crash point's setting
    monkeypatch.delenv(FAULT_SETTING)
    fault_point("demo.fault.unarmed")
