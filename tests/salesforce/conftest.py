"""The Salesforce client tests: a logged-in client against the simulator (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sfsim.testing import SimulatorHandle
from shared.salesforce import SalesforceClient
from tests.salesforce.client_setup import credentials_for


@pytest.fixture
def client(sfsim: SimulatorHandle) -> Iterator[SalesforceClient]:
    """A client logged in with client credentials; fast retries keep fault tests quick."""
    with SalesforceClient(credentials_for(sfsim), max_retries=3, backoff=0.01) as sf_client:
        yield sf_client
