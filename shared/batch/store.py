"""Where an instance keeps its records: blobs in one folder per instance, ETag-guarded.

    {job}/{instance}/state/{block}.json         the block's records: as loaded when staged,
                                                then after its last persisted step
                                                (payloads, failures, counts)
    {job}/{instance}/manifest.json              written last when staging: the commit point
    {job}/{instance}/groups/{step}/{group}.json one aggregator group's outcome per record
    {job}/{instance}/continued/{step}/{block}   claimed by the commit that goes on with a
                                                block whose records span several groups
    {job}/{instance}/failures.csv               the failure report, written at the end

`BlobStore` is the seam: `AzureBlobStore` in the app, `MemoryBlobStore` for tests and
in-process runs. Writes that must not overwrite another writer's state pass the ETag they
read (`etag=None` means "only if absent"); a lost race raises `ConcurrentWrite`.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.storage.tables import ConcurrentWrite

ANY_ETAG = "*"
IO_THREADS = 8
_blob_io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="batch-blob-io")
T = TypeVar("T")
R = TypeVar("R")


class BlobStore(Protocol):
    def read(self, name: str) -> tuple[bytes, str] | None:
        """(content, etag), or None when the blob does not exist."""

    def write(self, name: str, data: bytes, etag: str | None = ANY_ETAG) -> str:
        """Write; `etag` ANY_ETAG overwrites, None only creates, else only if unchanged."""

    def delete_folder(self, prefix: str) -> int:
        """Delete every blob under `prefix`; returns how many."""

    def names(self, prefix: str) -> Iterator[str]: ...


def read_blobs(store: BlobStore, names: Sequence[str]) -> list[tuple[bytes, str] | None]:
    """`store.read` of each name, the round trips side by side; in the names' order."""
    return side_by_side(store.read, names)


def side_by_side(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work` of each item in the blob I/O threads (for round trips, not step functions)."""
    if len(items) <= 1:
        return [work(item) for item in items]
    return list(_blob_io.map(work, items))


@dataclass
class AzureBlobStore:
    container: ContainerClient

    @classmethod
    def in_container(cls, service: BlobServiceClient, container: str) -> AzureBlobStore:
        client = service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        return cls(client)

    def read(self, name: str) -> tuple[bytes, str] | None:
        try:
            downloader = self.container.download_blob(name)
        except ResourceNotFoundError:
            return None
        return downloader.readall(), downloader.properties.etag

    def write(self, name: str, data: bytes, etag: str | None = ANY_ETAG) -> str:
        blob = self.container.get_blob_client(name)
        try:
            if etag == ANY_ETAG:
                answer = blob.upload_blob(data, overwrite=True)
            elif etag is None:
                answer = blob.upload_blob(data, overwrite=False)
            else:
                answer = blob.upload_blob(data, overwrite=True, etag=etag,
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise ConcurrentWrite(f"{name}: {error.reason or 'changed'}") from None
        return str(answer["etag"])

    def delete_folder(self, prefix: str) -> int:
        names = list(self.names(prefix))
        for start in range(0, len(names), 256):
            self.container.delete_blobs(*names[start:start + 256])
        return len(names)

    def names(self, prefix: str) -> Iterator[str]:
        for blob in self.container.list_blobs(name_starts_with=prefix):
            yield blob.name


@dataclass
class MemoryBlobStore:
    """A BlobStore in this process's memory, with the same ETag rules."""

    blobs: dict[str, tuple[bytes, str]]
    lock: threading.Lock

    @classmethod
    def empty(cls) -> MemoryBlobStore:
        return cls({}, threading.Lock())

    def read(self, name: str) -> tuple[bytes, str] | None:
        with self.lock:
            return self.blobs.get(name)

    def write(self, name: str, data: bytes, etag: str | None = ANY_ETAG) -> str:
        with self.lock:
            current = self.blobs.get(name)
            if etag is None and current is not None:
                raise ConcurrentWrite(f"{name}: exists")
            if etag not in (None, ANY_ETAG) and (current is None or current[1] != etag):
                raise ConcurrentWrite(f"{name}: changed")
            new_etag = uuid.uuid4().hex
            self.blobs[name] = (bytes(data), new_etag)
            return new_etag

    def delete_folder(self, prefix: str) -> int:
        with self.lock:
            doomed = [name for name in self.blobs if name.startswith(prefix)]
            for name in doomed:
                del self.blobs[name]
            return len(doomed)

    def names(self, prefix: str) -> Iterator[str]:
        with self.lock:
            found = sorted(name for name in self.blobs if name.startswith(prefix))
        yield from found


@dataclass(frozen=True)
class InstanceFolder:
    """The blob names of one instance."""

    job: str
    instance_id: str

    @property
    def prefix(self) -> str:
        return f"{self.job}/{self.instance_id}/"

    @property
    def manifest(self) -> str:
        return self.prefix + "manifest.json"

    @property
    def failures_report(self) -> str:
        return self.prefix + "failures.csv"

    def block_state(self, block: int) -> str:
        return f"{self.prefix}state/{block:07d}.json"

    @property
    def states_prefix(self) -> str:
        return self.prefix + "state/"

    def group(self, step: int, group: int) -> str:
        return f"{self.prefix}groups/{step:03d}/{group:07d}.json"

    def continued(self, step: int, block: int) -> str:
        return f"{self.prefix}continued/{step:03d}/{block:07d}"
