"""The task hub lease: one blob lease decides which host processes the hub."""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

log = logging.getLogger("devhost.engine")

LEASE_BLOB = "taskhub"
LEASE_SECONDS = 15  # the shortest blob lease; renewed every few seconds


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TaskHubLease:
    def __init__(self, container: ContainerClient) -> None:
        self._blob = container.get_blob_client(LEASE_BLOB)
        self._lease: BlobLeaseClient | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def held(self) -> bool:
        return self._lease is not None

    async def try_acquire(self) -> bool:
        with contextlib.suppress(ResourceExistsError, HttpResponseError):
            await self._blob.upload_blob(b"", overwrite=False)
        try:
            lease = await self._blob.acquire_lease(lease_duration=LEASE_SECONDS)
        except HttpResponseError as error:
            if error.status_code != 409:
                raise
            if not await self._break_if_owner_died():
                return False
            lease = await self._blob.acquire_lease(lease_duration=LEASE_SECONDS)
        await self._blob.set_blob_metadata({"owner": self.owner}, lease=lease)
        self._lease = lease
        log.info("took the task hub lease as %s", self.owner)
        return True

    async def _break_if_owner_died(self) -> bool:
        """A lease left by a killed process on this machine is broken at once, not after 15 s."""
        try:
            properties = await self._blob.get_blob_properties()
        except ResourceNotFoundError:
            return False
        owner = (properties.metadata or {}).get("owner", "")
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or _process_alive(int(pid)):
            return False
        log.info("breaking the task hub lease of %s, which is no longer running", owner)
        await BlobLeaseClient(self._blob).break_lease(lease_break_period=0)
        return True

    async def renew(self) -> bool:
        if self._lease is None:
            return False
        try:
            await self._lease.renew()
            return True
        except HttpResponseError as error:
            log.warning("lost the task hub lease: %s", error.message)
            self._lease = None
            return False

    async def release(self) -> None:
        if self._lease is None:
            return
        lease, self._lease = self._lease, None
        with contextlib.suppress(HttpResponseError):
            await lease.release()
