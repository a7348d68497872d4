"""Load & dispatch: stage an instance's records in blocks, all or nothing.

The blocks are written first and the manifest last: the manifest is the commit point. A
staging that fails part-way deletes what it wrote, so nothing usable is left behind and
the instance is never started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.batch.blocks import BlockState
from shared.batch.plan import RunInput, RunProgress
from shared.batch.settings import BatchSettings
from shared.batch.store import BlobStore, InstanceFolder

log = logging.getLogger(__name__)
UPLOAD_THREADS = 8


@dataclass(frozen=True)
class Manifest:
    job: str
    instance_id: str
    total_records: int
    block_size: int
    block_count: int

    def to_blob(self) -> bytes:
        return json.dumps({"job": self.job, "instance_id": self.instance_id,
                           "total_records": self.total_records,
                           "block_size": self.block_size,
                           "block_count": self.block_count}).encode()

    @classmethod
    def read(cls, store: BlobStore, folder: InstanceFolder) -> Manifest | None:
        stored = store.read(folder.manifest)
        if stored is None:
            return None
        return cls(**json.loads(stored[0]))


def first_run_input(manifest: Manifest, settings: BatchSettings, now: datetime) -> RunInput:
    """The input of a staged instance's orchestration, from its manifest: no block done yet,
    started `now`."""
    progress = RunProgress(manifest.job, manifest.instance_id, manifest.total_records,
                           manifest.block_size, manifest.block_count, now.isoformat())
    return RunInput(progress, settings.activity_attempts, settings.activity_retry_delay,
                    settings.blocks_per_generation, settings.turn_check_interval)


def block_count(total_records: int, block_size: int) -> int:
    return -(-total_records // block_size)


def stage_records(store: BlobStore, folder: InstanceFolder,
                  records: Sequence[dict[str, Any]], block_size: int) -> Manifest:
    """Write the blocks, then the manifest; on any failure delete them all and re-raise."""
    count = block_count(len(records), block_size)

    def write_block(block: int) -> None:
        # Staged as the block's state before its first step: a block activity reads one
        # blob, whether it starts the block or resumes it.
        chunk = [dict(record) for record in records[block * block_size:(block + 1) * block_size]]
        state = BlockState(folder.instance_id, block * block_size, 0, chunk,
                           [[] for _ in chunk])
        store.write(folder.block_state(block), state.to_blob())

    manifest = Manifest(folder.job, folder.instance_id, len(records), block_size, count)
    try:
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            list(pool.map(write_block, range(count)))
        store.write(folder.manifest, manifest.to_blob(), etag=None)
    except BaseException:
        log.exception("batch %s: staging failed; removing what was written", folder.prefix)
        discard_instance(store, folder)
        raise
    return manifest


def stage_blocks(store: BlobStore, folder: InstanceFolder,
                 chunks: Iterable[Sequence[dict[str, Any]]], block_size: int) -> Manifest:
    """Like `stage_records`, from records that arrive in chunks (a source read a block at a
    time): each block is written as soon as it is full, so at most one is held here."""
    total = blocks = 0
    try:
        for records in _blocks_of(chunks, block_size):
            state = BlockState(folder.instance_id, total, 0, records, [[] for _ in records])
            store.write(folder.block_state(blocks), state.to_blob())
            total += len(records)
            blocks += 1
        manifest = Manifest(folder.job, folder.instance_id, total, block_size, blocks)
        store.write(folder.manifest, manifest.to_blob(), etag=None)
    except BaseException:
        log.exception("batch %s: staging failed; removing what was written", folder.prefix)
        discard_instance(store, folder)
        raise
    return manifest


def _blocks_of(chunks: Iterable[Sequence[dict[str, Any]]],
               block_size: int) -> Iterator[list[dict[str, Any]]]:
    block: list[dict[str, Any]] = []
    for chunk in chunks:
        for record in chunk:
            block.append(dict(record))
            if len(block) == block_size:
                yield block
                block = []
    if block:
        yield block


def discard_instance(store: BlobStore, folder: InstanceFolder) -> None:
    try:
        store.delete_folder(folder.prefix)
    except Exception:  # nothing usable is left without a manifest, whatever remains
        log.exception("batch %s: could not delete the staged blocks", folder.prefix)
