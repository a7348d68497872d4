"""Fixtures of the sync tests: fresh state tables on Azurite, asset sources, a simulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from sfsim.testing import SimulatorHandle
from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.sync.sinks import SalesforceSink
from shared.sync.state import SyncState
from tests.salesforce.client_setup import credentials_for
from tests.sync.local_host import sync_host  # noqa: F401 (a fixture)


@pytest.fixture
def state(azurite) -> SyncState:
    """The three sync tables under names no other test uses."""
    suffix = uuid.uuid4().hex[:10]
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return SyncState(service, f"W{suffix}", f"R{suffix}", f"D{suffix}")


@pytest.fixture
def client(sfsim: SimulatorHandle) -> Iterator[SalesforceClient]:
    """A client of the simulator; one fast retry keeps fault tests quick."""
    with SalesforceClient(credentials_for(sfsim), max_retries=1, backoff=0.01) as client:
        yield client


@pytest.fixture
def salesforce_sink(sfsim: SimulatorHandle) -> Iterator[SalesforceSink]:
    credentials = SalesforceCredentials(
        login_url=sfsim.login_url, client_id=sfsim.client_id,
        client_secret=sfsim.client_secret,
    )
    with SalesforceClient(credentials, max_retries=2, backoff=0.01) as client:
        yield SalesforceSink(client, "Asset", "External_Id__c")

