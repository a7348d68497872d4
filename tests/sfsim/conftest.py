"""The simulator's API tests: a requests session logged in to a freshly reset simulator."""

from __future__ import annotations

import pytest
import requests

from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import access_token


@pytest.fixture
def api(sfsim: SimulatorHandle) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token(sfsim)}"
    session.base = sfsim.base_url  # type: ignore[attr-defined]
    return session
