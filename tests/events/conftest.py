"""Fixtures of the event queue tests: fresh queue tables on Azurite, a Salesforce client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from sfsim.testing import SimulatorHandle
from shared.events.drain_state import DrainStateTable
from shared.events.queue import EventQueue
from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.storage.tables import table_client


@pytest.fixture
def queue(azurite) -> EventQueue:
    """The queue's three tables under names no other test uses."""
    suffix = uuid.uuid4().hex[:10]
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return EventQueue(table_client(service, f"Q{suffix}"), table_client(service, f"D{suffix}"),
                      DrainStateTable(table_client(service, f"S{suffix}")))


@pytest.fixture
def sf_client(sfsim: SimulatorHandle) -> Iterator[SalesforceClient]:
    credentials = SalesforceCredentials(login_url=sfsim.login_url, client_id=sfsim.client_id,
                                        client_secret=sfsim.client_secret)
    with SalesforceClient(credentials, max_retries=1, backoff=0.01) as client:
        yield client
