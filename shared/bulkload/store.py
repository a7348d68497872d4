"""Where a load keeps its data: one blob folder per load, CSV streamed through temp files.

    {container}/{load id}/claim                             the load id is taken (claims.py)
    {container}/{load id}/{run}/run-claim                   the execution loading the run
    {container}/{load id}/{run}/request.json               levels (no records)
    {container}/{load id}/{run}/body.json                  the body as posted (staged.py)
    {container}/{load id}/{run}/levels/{i}/records.jsonl   the level's validated records
    {container}/{load id}/{run}/levels/{i}/prepared.csv    a child level's, as CSV values
    {container}/{load id}/{run}/levels/{i}/part-{k}.csv    CSV uploaded to the k-th job
    {container}/{load id}/{run}/levels/{i}/idmap.csv       externalId -> Salesforce id
    {container}/{load id}/{run}/levels/{i}/succeeded.csv   loaded records, with their ids
    {container}/{load id}/{run}/levels/{i}/successes-{k}.csv  a leaf level's, as sent by
                                                           Salesforce (leaf_results.py)
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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

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

    def download_into(self, blob_name: str, local: IO[bytes]) -> bool:
        """The blob written to `local` (then positioned at its start); False if missing."""
        try:
            self.container.download_blob(blob_name).readinto(local)
        except ResourceNotFoundError:
            return False
        local.seek(0)
        return True

    def read_bytes(self, blob_name: str) -> bytes:
        return self.container.download_blob(blob_name).readall()


def spooled_file() -> IO[bytes]:
    """A temporary file for one staged CSV; small ones stay in memory."""
    return tempfile.SpooledTemporaryFile(max_size=8 << 20)

