"""The storage account named by `AzureWebJobsStorage`, read the way the Functions host does.

Either a connection string (`UseDevelopmentStorage=true` means Azurite on its default
ports), or an identity-based connection: settings `AzureWebJobsStorage__blobServiceUri`,
`__queueServiceUri`, `__tableServiceUri` (or `__accountName`, or `__serviceUri` for blobs
only), with `__credential=managedidentity` and optionally `__clientId` for a user-assigned
identity, or `__tenantId` + `__clientId` + `__clientSecret` for a service principal.
Without either, the developer's identity (`DefaultAzureCredential`: environment, az login,
...) is used, as the host does locally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devhost.host_config import StartupError

STORAGE_SETTING = "AzureWebJobsStorage"
LOOPBACK = "127.0.0.1"
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
    "KBHBeksoGMGw==;"
    f"BlobEndpoint=http://{LOOPBACK}:10000/devstoreaccount1;"
    f"QueueEndpoint=http://{LOOPBACK}:10001/devstoreaccount1;"
    f"TableEndpoint=http://{LOOPBACK}:10002/devstoreaccount1;"
)
MANAGED_IDENTITY = "managedidentity"


def storage_connection_string(value: str | None) -> str | None:
    """`UseDevelopmentStorage=true` means Azurite on its default ports, as in Azure tools."""
    if not value:
        return None
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return DEVELOPMENT_STORAGE
    return value


@dataclass(frozen=True)
class StorageAccount:
    """How to reach the account: a connection string, or service URIs and an identity."""

    setting: str = STORAGE_SETTING
    connection_string: str | None = None
    blob_uri: str | None = None
    queue_uri: str | None = None
    table_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = None

    @classmethod
    def from_settings(
        cls, setting: str = STORAGE_SETTING, environ: Mapping[str, str] | None = None
    ) -> StorageAccount | None:
        """The account named by `setting`, or None when nothing names one."""
        environ = os.environ if environ is None else environ
        connection_string = storage_connection_string(environ.get(setting))
        if connection_string:
            return cls(setting=setting, connection_string=connection_string)
        prefix = (setting + "__").lower()
        # App setting names are case-insensitive in Azure.
        parts = {
            name[len(prefix):].lower(): value
            for name, value in environ.items()
            if name.lower().startswith(prefix) and value
        }
        if not parts:
            return None
        account = parts.get("accountname")

        def service_uri(service: str) -> str | None:
            uri = parts.get(f"{service}serviceuri")
            if uri is None and account:
                uri = f"https://{account}.{service}.core.windows.net"
            return uri.rstrip("/") if uri else None

        return cls(
            setting=setting,
            blob_uri=service_uri("blob") or (parts.get("serviceuri") or "").rstrip("/") or None,
            queue_uri=service_uri("queue"),
            table_uri=service_uri("table"),
            credential=(parts.get("credential") or "").lower() or None,
            client_id=parts.get("clientid"),
            tenant_id=parts.get("tenantid"),
            client_secret=parts.get("clientsecret"),
        )

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    def require(self, *services: str) -> None:
        """Refuse to start when the connection cannot reach a service it needs: a
        malformed connection string, or an identity-based one without that endpoint."""
        if not self.uses_identity:
            self._check_connection_string(services)
            return
        missing = [s for s in services if getattr(self, f"{s}_uri") is None]
        if missing:
            names = ", ".join(f"{self.setting}__{s}ServiceUri" for s in missing)
            raise StartupError(
                f"app setting(s) {names} not set: the identity-based connection "
                f"{self.setting!r} needs the {'/'.join(missing)} endpoint(s) here "
                f"(or set {self.setting}__accountName)"
            )

    def _check_connection_string(self, services: tuple[str, ...]) -> None:
        from azure.data.tables import TableServiceClient
        from azure.storage.blob import BlobServiceClient

        parsers: dict[str, Any] = {"blob": BlobServiceClient, "table": TableServiceClient}
        for service in services:
            try:
                parsers[service].from_connection_string(self.connection_string or "")
            except (ValueError, KeyError) as error:
                # The SDK's message does not echo the string, so no account key is shown.
                raise StartupError(
                    f"app setting {self.setting!r} is not a storage connection string the "
                    f"{service} service can use ({type(error).__name__}: {error}); expected "
                    "DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;... or "
                    "UseDevelopmentStorage=true"
                ) from None

    def describe(self) -> str:
        """Where the account is, for the start-up listing (no keys)."""
        if not self.uses_identity:
            return "connection string"
        how = self.credential or ("service principal" if self.client_secret else "developer")
        return f"identity-based ({how} credential), {self.blob_uri or self.table_uri}"

    # -- credentials and clients --

    def _credential_options(self) -> tuple[str, dict[str, Any]]:
        if self.credential == MANAGED_IDENTITY:
            return "ManagedIdentityCredential", (
                {"client_id": self.client_id} if self.client_id else {}
            )
        if self.tenant_id and self.client_id and self.client_secret:
            return "ClientSecretCredential", {
                "tenant_id": self.tenant_id, "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        options = {"managed_identity_client_id": self.client_id} if self.client_id else {}
        return "DefaultAzureCredential", options

    def async_credential(self) -> Any:
        """An azure.identity.aio credential (the caller closes it); None for a connection
        string."""
        if not self.uses_identity:
            return None
        import azure.identity.aio as identity

        name, options = self._credential_options()
        return getattr(identity, name)(**options)

    def sync_credential(self) -> Any:
        if not self.uses_identity:
            return None
        import azure.identity as identity

        name, options = self._credential_options()
        return getattr(identity, name)(**options)

    def async_table_service(self, credential: Any = None) -> Any:
        from azure.data.tables.aio import TableServiceClient

        if not self.uses_identity:
            return TableServiceClient.from_connection_string(self.connection_string or "")
        return TableServiceClient(endpoint=self.table_uri or "", credential=credential)

    def async_blob_service(self, credential: Any = None) -> Any:
        from azure.storage.blob.aio import BlobServiceClient

        if not self.uses_identity:
            return BlobServiceClient.from_connection_string(self.connection_string or "")
        return BlobServiceClient(account_url=self.blob_uri or "", credential=credential)

    def blob_service(self) -> Any:
        """A synchronous BlobServiceClient (timer schedule status and locks)."""
        from azure.storage.blob import BlobServiceClient

        if not self.uses_identity:
            return BlobServiceClient.from_connection_string(self.connection_string or "")
        return BlobServiceClient(account_url=self.blob_uri or "", credential=self.sync_credential())
