"""Storage service clients built from the app's storage settings.

Locally a connection string (Azurite); in Azure the user-assigned managed identity named
by `AzureWebJobsStorage__clientId`, the same identity the Functions host uses.
"""

from __future__ import annotations

from functools import lru_cache

from azure.core.credentials import TokenCredential
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.config import StorageSettings


@lru_cache(maxsize=4)
def _managed_identity_credential(client_id: str | None) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


def table_service(settings: StorageSettings) -> TableServiceClient:
    if settings.connection_string:
        return TableServiceClient.from_connection_string(settings.connection_string)
    assert settings.table_service_uri, "StorageSettings.validate guarantees a table URI"
    return TableServiceClient(
        endpoint=settings.table_service_uri,
        credential=_managed_identity_credential(settings.client_id),
    )


def blob_service(settings: StorageSettings) -> BlobServiceClient:
    if settings.connection_string:
        return BlobServiceClient.from_connection_string(settings.connection_string)
    assert settings.blob_service_uri, "StorageSettings.validate guarantees a blob URI"
    return BlobServiceClient(
        account_url=settings.blob_service_uri,
        credential=_managed_identity_credential(settings.client_id),
    )


@lru_cache(maxsize=4)
def process_blob_service(settings: StorageSettings) -> BlobServiceClient:
    """One blob service client per process and account, for steps that run again and again
    (a sync run's begin asks for recorded Bulk API jobs every run): its connections are
    reused instead of opened anew (a TLS handshake each, against Azure). Never closed."""
    return blob_service(settings)
