"""A backlog round's first step: the rows after the watermark up to the run's bound, read
a page at a time (the next page read while this one is written), masked and mapped into
ingest CSV lines (backlog_mapping.py), written as parts whose upsert jobs are submitted as
soon as each is full (backlog_parts.py, backlog_submission.py), and the keys to Blob
Storage in blobs of KEYS_PER_BLOB rows ({container}/{job}/{run}/keys-{k}.csv), to
dead-letter what Salesforce rejects. Rows the mapping rejects are dead-lettered here; rows
with a NULL key or cursor are read by no page, here as in pages.py (the run's begin
dead-lettered them: null_rows.py).

Reading stops before a record's second change (its first may be in a job still running:
the jobs run side by side, the later change could be written first; record_hashes.py
tells) or after MAX_ROUND_RECORDS records; the orchestration goes on from the watermark
the finish advanced, in another round when this one staged more rows than the backlog
threshold, else by pages.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.salesforce import MAX_UPLOAD_BYTES, SalesforceClient, ingest_csv_bytes
from shared.sql.keyset import page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.backlog import KEYS_COLUMNS, backlog_sink_spec, owned_watermark
from shared.sync.backlog_jobs import record_job, recorded_jobs_store
from shared.sync.backlog_mapping import PageMapping, StagedPage
from shared.sync.backlog_parts import PartJobs, PartTooLarge
from shared.sync.backlog_submission import submit_part
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import BacklogStaged, BacklogStop
from shared.sync.positions import StoredBound
from shared.sync.read_ahead import ReadAhead
from shared.sync.record_hashes import RecordHashes
from shared.sync.state import SyncState

log = logging.getLogger(__name__)

READ_ROWS = 5000  # rows per source query while staging
DEFAULT_PART_ROWS = 50_000  # rows per upsert job (SYNC_BACKLOG_PART_ROWS)
KEYS_PER_BLOB = 50_000
# Records one round tracks (by hash, in a table sized once for them: 5 MB for a million,
# record_hashes.py) to stop before a record it staged already; a larger backlog is staged
# in rounds, each after the jobs of the one before ended (a smaller limit adds a wait for
# Salesforce's jobs at each round's end).
MAX_ROUND_RECORDS = 1_000_000


def stage_backlog(job: SyncJob, state: SyncState, store: LoadStore, client: SalesforceClient,
                  run_id: str, upper_bound: StoredBound,
                  part_rows: int = DEFAULT_PART_ROWS, max_part_bytes: int = MAX_UPLOAD_BYTES,
                  source: SqlSource | None = None,
                  round_records: int = MAX_ROUND_RECORDS) -> BacklogStaged:
    """Read, mask and map the rows after the watermark up to the bound, write them as
    ingest CSV parts and submit each part's upsert job as soon as the part is full (the
    rows of the next part are read meanwhile); the keys to Blob Storage as they fill.
    Reading stops before a second change of a record (Salesforce runs the jobs side by
    side: the later change could be written first), or after `round_records` records;
    `stopped` says whether another round follows or pages write the rest."""
    watermark = owned_watermark(job, state, run_id)
    keyset, codec = job.source.keyset(), job.source.codec
    bound = codec.bound(upper_bound)
    if bound.value is None:
        return BacklogStaged(position=codec.stored_position(watermark.position))
    source = source or job.source.sql_source()
    spec = backlog_sink_spec(job)
    size = max(job.page_size, READ_ROWS)
    staged_records = RecordHashes(max(round_records, 1))
    stopped = BacklogStop.BOUND

    def pages() -> Iterator[StagedPage]:
        nonlocal stopped
        position = watermark.position
        mapping = PageMapping(job)
        while True:
            try:
                names, found = source.fetch_tuples(page_statement(keyset, position, bound, size))
            except SourceError as error:
                raise SyncRunError(job.name, error.code, error.message) from None
            keys_at = [names.index(column) for column in job.source.key_columns]
            taken, stop = _rows_of_new_records(keys_at, found, staged_records)
            if taken:
                page = mapping.page(names, found[:taken])
                yield page
                position = position_of(keyset, page.last)
            if stop is not None:
                stopped = stop
                return
            if len(found) < size:
                return

    records = recorded_jobs_store(store, job.name)

    def submit(part: BinaryIO) -> JobSnapshot:
        return submit_part(job, spec, client, part, lambda job_id: record_job(
            records, run_id, job_id))

    rows = rejected = 0
    last: dict[str, Any] | None = None
    parts: PartJobs | None = None
    with contextlib.ExitStack() as cleanup:
        keys = cleanup.enter_context(_KeyBlobs(store))
        with ReadAhead(pages()) as reader:
            for page in reader:
                rows, last = rows + page.rows, page.last
                if page.letters:
                    state.dead_letters.add(job.name, run_id, page.letters)
                    rejected += len(page.letters)
                if not page.lines:
                    continue
                if parts is None:
                    parts = cleanup.enter_context(PartJobs(page.columns, submit, part_rows,
                                                           max_part_bytes))
                try:
                    parts.add(page.lines)
                except PartTooLarge as error:
                    raise SyncRunError(job.name, "RECORD_TOO_LARGE", str(error),
                                       retryable=False) from None
                keys.add(page.keys)
        jobs = parts.finish() if parts is not None else []
        key_blobs = keys.finish()
    position = watermark.position if last is None else position_of(keyset, last)
    if stopped is BacklogStop.RECORD_AGAIN and rows > job.backlog_threshold:
        stopped = BacklogStop.NEXT_ROUND  # a round's worth staged: another for the rest
    log.info("sync job %s: run %s staged %d changed rows in %d Bulk API jobs (%d rejected "
             "by the mapping)", job.name, run_id, rows, len(jobs), rejected)
    return BacklogStaged((), rows, rejected, codec.stored_position(position), jobs=tuple(jobs),
                         keys=key_blobs, stopped=stopped)


def _rows_of_new_records(keys_at: list[int], found: list[Sequence[Any]],
                         staged: RecordHashes) -> tuple[int, BacklogStop | None]:
    """How many of `found` to stage (their records' key hashes added to `staged`), and why
    the rest are not: a record staged already, or `staged` holds its limit."""
    for index, values in enumerate(found):
        if staged.full:
            return index, BacklogStop.NEXT_ROUND
        if not staged.add_new(hash(tuple(values[at] for at in keys_at))):
            return index, BacklogStop.RECORD_AGAIN
    return len(found), None


class _KeyBlobs:
    """The keys (external id -> record key, cursor) in blobs of about KEYS_PER_BLOB rows,
    each uploaded in one put as it fills: a few MB at a time, whatever the backlog."""

    def __init__(self, store: LoadStore) -> None:
        self.store = store
        self.names: list[str] = []
        self.file: Any = None
        self.rows = 0

    def add(self, lines: list[list[str]]) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _upload/close
            self.file.write(ingest_csv_bytes([KEYS_COLUMNS]))
        self.file.write(ingest_csv_bytes(lines))
        self.rows += len(lines)
        if self.rows >= KEYS_PER_BLOB:
            self._upload()

    def finish(self) -> tuple[str, ...]:
        if self.file is not None or not self.names:
            self.add([])
            self._upload()
        return tuple(self.names)

    def _upload(self) -> None:
        name = self.store.name(f"keys-{len(self.names)}.csv")
        self.file.seek(0)
        self.store.upload_file(name, self.file)
        self.names.append(name)
        self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.rows = None, 0

    def __enter__(self) -> _KeyBlobs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
