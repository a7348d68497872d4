"""The app's Salesforce client: OAuth logins, SOQL queries, sObject Collections, Bulk API
2.0 ingest, one module per API family (like the simulator's sfsim/api/):

    session.py              login, HTTP with retries, typed errors
    query.py                SOQL queries, limits
    sobject_collections.py  upsert and delete by external id, 200 records a call
    bulk_ingest.py          Bulk API 2.0 ingest jobs, step by step

`SalesforceClient` is all of them on one session.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.salesforce.bulk_ingest import BulkIngestApi, IngestJob
from shared.salesforce.session import SalesforceCredentials, SalesforceRetry
from shared.salesforce.sobject_collections import (
    COLLECTION_CHUNK,
    RecordOutcome,
    SObjectCollectionsApi,
)

__all__ = [
    "COLLECTION_CHUNK",
    "IngestJob",
    "RecordOutcome",
    "SalesforceClient",
    "SalesforceCredentials",
    "SalesforceRetry",
    "process_client",
]


class SalesforceClient(SObjectCollectionsApi, BulkIngestApi):
    """A logged-in connection to one org; threads may share it (logins are serialised).

    `api_calls` counts every HTTP request sent, retries included.
    """


_process_clients: dict[Any, SalesforceClient] = {}
_process_clients_lock = threading.Lock()


def process_client(settings: Any) -> SalesforceClient:
    """One logged-in client per org (its `SalesforceSettings`) and process.

    Activities of every capability share it, so its token and connection pool are reused: a
    client per activity would log in again each time and double the API calls.
    """
    section = getattr(settings, "salesforce", settings)
    with _process_clients_lock:
        client = _process_clients.get(section)
        if client is None:
            client = SalesforceClient.from_settings(section)
            _process_clients[section] = client
    return client
