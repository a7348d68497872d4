"""Fixtures of the engine tests (helpers live in engine_harness.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def connection_string(azurite: Any) -> str:
    return azurite.connection_string
