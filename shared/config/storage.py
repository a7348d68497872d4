"""Settings section `storage`: the storage account the app keeps its own state in."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config.framework import parse_choice, parse_http_url, setting


@dataclass(frozen=True)
class StorageSettings:
    """Where durable state outside the task hub lives (watermarks, runs, staged CSV).

    Locally a connection string (Azurite); in Azure identity-based service URIs, exactly
    as the Functions host reads `AzureWebJobsStorage`.
    """

    connection_string: str | None = setting(
        "AzureWebJobsStorage",
        description="storage connection string (Azurite locally); empty in Azure, "
        "where the __blobServiceUri/__queueServiceUri/__tableServiceUri settings are used",
        default=None,
        secret=True,  # it carries the account key
    )
    blob_service_uri: str | None = setting(
        "AzureWebJobsStorage__blobServiceUri",
        description="blob endpoint for identity-based storage access",
        default=None,
        parse=parse_http_url,
    )
    queue_service_uri: str | None = setting(
        "AzureWebJobsStorage__queueServiceUri",
        description="queue endpoint for identity-based storage access (Durable Functions)",
        default=None,
        parse=parse_http_url,
    )
    table_service_uri: str | None = setting(
        "AzureWebJobsStorage__tableServiceUri",
        description="table endpoint for identity-based storage access",
        default=None,
        parse=parse_http_url,
    )
    credential: str | None = setting(
        "AzureWebJobsStorage__credential",
        description="`managedidentity` for identity-based storage access",
        default=None,
        parse=parse_choice("managedidentity"),
    )
    client_id: str | None = setting(
        "AzureWebJobsStorage__clientId",
        description="client id of the user-assigned managed identity used for storage",
        default=None,
    )

    def validate(self) -> list[str]:
        if self.connection_string:
            return []
        missing = [
            name
            for name, value in (
                ("AzureWebJobsStorage__blobServiceUri", self.blob_service_uri),
                ("AzureWebJobsStorage__queueServiceUri", self.queue_service_uri),
                ("AzureWebJobsStorage__tableServiceUri", self.table_service_uri),
            )
            if not value
        ]
        if missing:
            return [
                "AzureWebJobsStorage is missing and so are " + ", ".join(missing)
                + ": set a connection string, or all three service URIs for identity access"
            ]
        return []
