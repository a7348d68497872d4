"""The `/_sim/` admin endpoints: reset and settings."""

from __future__ import annotations

import pytest
import requests

from sfsim.testing import SimulatorHandle


def test_admin_reset_restores_settings_and_empties_the_org(sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": "gone"}])
    sfsim.configure(error_rate_5xx=1.0, job_delay_seconds=9)
    sfsim.reset()
    assert sfsim.records("Account") == []
    config = sfsim.config()
    assert config["error_rate_5xx"] == 0.0 and config["job_delay_seconds"] == 0.02
    assert config["client_secret"] == "***"
    with pytest.raises(RuntimeError, match="unknown setting"):
        sfsim.configure(nonsense=1)
    with pytest.raises(RuntimeError, match="fraction"):
        sfsim.configure(error_rate_429=3)


def test_setting_the_seed_replays_the_same_faults(sfsim: SimulatorHandle) -> None:
    def statuses() -> list[int]:
        return [requests.get(f"{sfsim.base_url}/services/data", timeout=10).status_code
                for _ in range(30)]

    sfsim.configure(seed=7, error_rate_5xx=0.5)
    first = statuses()
    sfsim.configure(seed=7)
    assert statuses() == first
    assert {200, 503} == set(first)
