"""Where a load keeps its data: one blob folder per load, CSV streamed through temp files.

    {container}/{load id}/claim                             the load id is taken (metadata
                                                            `started` once the load started)
    {container}/{load id}/{run}/request.json               levels (no records)
    {container}/{load id}/{run}/levels/{i}/records.jsonl   the level's validated records
    {container}/{load id}/{run}/levels/{i}/part-{k}.csv    CSV uploaded to the k-th job
    {container}/{load id}/{run}/levels/{i}/idmap.csv       externalId -> Salesforce id
    {container}/{load id}/{run}/levels/{i}/failed.csv      failed and unprocessed records
    {container}/{load id}/{run}/levels/{i}/orphans.csv     children of records not loaded
    {container}/{load id}/{run}/failures.csv               every failure of the load

`run` is chosen by the starter, so two requests racing for the same load id never write
into each other's folder; the orchestration input names the folder of the run that won.
Blobs are read into and written from temporary files: a level of any size costs disk,
not memory.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings

CSV_CONTENT = ContentSettings(content_type="text/csv; charset=utf-8")


@dataclass(frozen=True)
class LoadStore:
    container: ContainerClient
    prefix: str

    @classmethod
    def for_load(cls, service: BlobServiceClient, container: str, prefix: str) -> LoadStore:
        return cls(service.get_container_client(container), prefix)

    def ensure_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def name(self, *parts: str | int) -> str:
        return "/".join([self.prefix, *(str(part) for part in parts)])

    def level_blob(self, level_index: int, file_name: str) -> str:
        return self.name("levels", level_index, file_name)

    def upload_file(self, blob_name: str, source: IO[bytes], content_type: str = "") -> int:
        """Upload a file from its current position; returns the bytes uploaded."""
        start = source.tell()
        source.seek(0, 2)
        length = source.tell() - start
        source.seek(start)
        settings = CSV_CONTENT if blob_name.endswith(".csv") else ContentSettings(
            content_type=content_type or "application/octet-stream"
        )
        self.container.upload_blob(
            blob_name, source, length=length, overwrite=True, content_settings=settings
        )
        return length

    def upload_bytes(self, blob_name: str, data: bytes, content_type: str) -> None:
        self.container.upload_blob(
            blob_name, data, overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )

    def exists(self, blob_name: str) -> bool:
        return self.container.get_blob_client(blob_name).exists()

    @contextlib.contextmanager
    def download(self, blob_name: str) -> Iterator[IO[bytes]]:
        """The blob in a temporary file positioned at its start; missing blob: KeyError."""
        with tempfile.TemporaryFile() as local:
            try:
                self.container.download_blob(blob_name).readinto(local)
            except ResourceNotFoundError:
                raise KeyError(blob_name) from None
            local.seek(0)
            yield local

    @contextlib.contextmanager
    def download_if_exists(self, blob_name: str) -> Iterator[IO[bytes] | None]:
        with tempfile.TemporaryFile() as local:
            try:
                self.container.download_blob(blob_name).readinto(local)
            except ResourceNotFoundError:
                yield None
                return
            local.seek(0)
            yield local

    def read_bytes(self, blob_name: str) -> bytes:
        return self.container.download_blob(blob_name).readall()


def claim_load_id(service: BlobServiceClient, container: str, load_id: str) -> bool:
    """Create `{load id}/claim` unless it exists: only the first request for an id starts it.

    The Durable backend refuses a second start only while the first runs; after it ended,
    a start would replace it. The claim makes a load id usable once, ever.
    """
    store = LoadStore(service.get_container_client(container), load_id)
    store.ensure_container()
    try:
        store.container.upload_blob(store.name("claim"), b"", overwrite=False)
    except ResourceExistsError:
        return False
    return True


@dataclass(frozen=True)
class LoadClaim:
    """The claim of a load id as stored: did its load start, when was it last written."""

    started: bool
    written_at: datetime
    etag: str


def _claim_blob(service: BlobServiceClient, container: str, load_id: str) -> BlobClient:
    return service.get_container_client(container).get_blob_client(f"{load_id}/claim")


def read_load_claim(service: BlobServiceClient, container: str, load_id: str) -> LoadClaim | None:
    try:
        properties = _claim_blob(service, container, load_id).get_blob_properties()
    except ResourceNotFoundError:
        return None
    return LoadClaim(started=(properties.metadata or {}).get("started") == "true",
                     written_at=properties.last_modified, etag=properties.etag)


def mark_load_started(service: BlobServiceClient, container: str, load_id: str) -> None:
    """Record on the claim that the orchestration was started (it may be purged later)."""
    _claim_blob(service, container, load_id).set_blob_metadata({"started": "true"})


def take_over_load_claim(
    service: BlobServiceClient, container: str, load_id: str, claim: LoadClaim
) -> bool:
    """Re-take a claim whose request died before starting its load; only one taker wins."""
    try:
        _claim_blob(service, container, load_id).upload_blob(
            b"", overwrite=True, etag=claim.etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def release_load_id(service: BlobServiceClient, container: str, load_id: str) -> None:
    """Undo a claim whose load could not be started, so the client can post it again."""
    with contextlib.suppress(ResourceNotFoundError):
        service.get_container_client(container).delete_blob(f"{load_id}/claim")


class LoadAlreadyRan(Exception):
    """The staged records of a load were already loaded by another execution."""


def claim_load_run(store: LoadStore, run_token: str) -> None:
    """Let one orchestration execution load these staged records, ever.

    The Durable API's restart (`restartPostUri`) starts a new execution over the same input:
    it would send every record again (inserts twice). The first execution writes its token;
    the same execution may claim again (an activity runs at least once); another is refused.
    """
    blob = store.name("run-claim")
    try:
        store.container.upload_blob(blob, run_token.encode(), overwrite=False)
        return
    except ResourceExistsError:
        pass
    claimed_by = store.read_bytes(blob).decode()
    if claimed_by != run_token:
        raise LoadAlreadyRan(
            f"the records staged under {store.prefix} were loaded by an earlier run; a load "
            "cannot be restarted: post it again with a new loadId"
        )


def spooled_file() -> IO[bytes]:
    """A temporary file for one staged CSV; small ones stay in memory."""
    return tempfile.SpooledTemporaryFile(max_size=8 << 20)


def copy_stream(source: IO[bytes], target: IO[bytes]) -> None:
    shutil.copyfileobj(source, target, 1 << 20)
