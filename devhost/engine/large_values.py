"""Property values too large for a table cell, kept in the task hub's large-messages blobs.

A row keeps `<name>__blob` (the blob's name) in place of such a value; blobs are named by
instance and content, so writing the same value again stores nothing new and purging an
instance deletes its prefix.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import ContainerClient

from devhost.engine.rows import LARGE_VALUE_CHARS

BLOB_SUFFIX = "__blob"


class LargeValues:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    async def pack(self, entity: dict[str, Any]) -> dict[str, Any]:
        """The row to store: None values left out, values too large moved to blobs."""
        packed: dict[str, Any] = {}
        for name, value in entity.items():
            if value is None:
                continue
            if isinstance(value, str) and len(value) > LARGE_VALUE_CHARS:
                data = value.encode("utf-8")
                # Named by content: writing the same value again stores nothing new.
                blob_name = f"{entity['PartitionKey']}/{hashlib.sha256(data).hexdigest()}"
                with contextlib.suppress(ResourceExistsError):
                    await self.container.upload_blob(blob_name, data, overwrite=False)
                packed[name + BLOB_SUFFIX] = blob_name
            else:
                packed[name] = value
        return packed

    async def unpack(self, entity: dict[str, Any]) -> dict[str, Any]:
        """The row as written: values moved to blobs read back in place."""
        unpacked = dict(entity)
        for name in [key for key in entity if key.endswith(BLOB_SUFFIX)]:
            downloader = await self.container.download_blob(entity[name])
            unpacked[name[: -len(BLOB_SUFFIX)]] = (await downloader.readall()).decode("utf-8")
            del unpacked[name]
        return unpacked

    async def delete_instance_values(self, instance_id: str) -> None:
        async for blob in self.container.list_blobs(name_starts_with=f"{instance_id}/"):
            await self.container.delete_blob(blob.name)
