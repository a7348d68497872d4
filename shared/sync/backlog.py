"""Backlog mode: a run that found more changed rows than its job's threshold loads them
with Bulk API 2.0 upsert jobs instead of sObject Collections pages.

    stage_backlog    the rows after the watermark up to the run's bound, masked and mapped,
                     written as ingest CSV parts of at most `part_rows` rows (and
                     MAX_UPLOAD_BYTES) on temporary files; each part's upsert job is
                     created, filled (streamed) and closed as soon as the part is full, so
                     Salesforce works on it while the next part is read (backlog_parts.py);
                     and the keys (external id -> record key and cursor, to dead-letter
                     what Salesforce rejects) to Blob Storage as they fill, in blobs of
                     KEYS_PER_BLOB rows ({container}/{job}/{run}/keys-{k}.csv);
                     rows the mapping rejects are dead-lettered here; reading stops before
                     a record's second change (its first may be in a job still running:
                     the jobs run side by side, the later change could be written first)
                     or after MAX_ROUND_RECORDS records, and the orchestration goes on
                     from the watermark the finish advanced: in another round when this
                     one staged more rows than the backlog threshold, else by pages
    poll_jobs        (shared/bulkload/jobs.py) between durable timers, until every job ended,
                     and the jobs recorded by earlier attempts or failed runs too
                     (backlog_jobs.py: each job is recorded before its data is uploaded)
    finish_backlog   failed and unprocessed records to the dead-letter table, then the
                     watermark (and the run's totals) advanced past the staged rows, under
                     its ETag; the staged blobs are deleted

Each step is safe to repeat (the durable backend runs an activity at least once): a stage
repeated after a crash submits its parts again, and a part upserted twice changes nothing
(the jobs of the first try may still run: they are recorded, the run waits until they
ended before it writes on, and their outcomes are not counted; the second try's are); a
finish repeated after its checkpoint finds the watermark already there. A job that failed
as a whole fails the run with the watermark untouched: the next run loads the same rows
again, once the jobs of the failed run ended. `submit_backlog_part` loads a part staged
in Blob Storage, for runs staged by an earlier version that wrote parts there.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, BinaryIO

from azure.core.exceptions import ResourceNotFoundError

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.crash_points import crash_point
from shared.salesforce import MAX_UPLOAD_BYTES, NULL_MARKER, SalesforceClient, ingest_csv_bytes
from shared.salesforce.bulk_csv import format_value
from shared.salesforce.errors import SalesforceError
from shared.sql.keyset import page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.backlog_jobs import forget_jobs, record_job, recorded_jobs_store
from shared.sync.backlog_parts import PartJobs, PartTooLarge
from shared.sync.errors import SyncRunError
from shared.sync.job import SalesforceSinkSpec, SyncJob
from shared.sync.messages import BacklogStaged, BacklogStop, PagesResult, RunTotals
from shared.sync.positions import StoredBound
from shared.sync.read_ahead import ReadAhead
from shared.sync.record_hashes import RecordHashes
from shared.sync.state import DeadLetter, SyncState, Watermark, WatermarkConflict

log = logging.getLogger(__name__)

_ABSENT = object()  # a field the record does not have: its CSV value is empty (unchanged)

# Bulk API 2.0 reads the text #N/A as null and has no way to escape it (as a bulk load
# refuses it, request.py): sent, the field would be cleared and the row counted delivered.
NULL_MARKER_TEXT = ("NULL_MARKER_TEXT",
                    f"a value is the text {NULL_MARKER}, which Bulk API 2.0 reads as null: "
                    "the record cannot be loaded in backlog mode as it is")

# A part's upsert job is created, filled and closed; the parts after it are not.
BACKLOG_AFTER_PART_SUBMITTED = "sync.backlog.after_part_submitted"

READ_ROWS = 5000  # rows per source query while staging
DEFAULT_PART_ROWS = 50_000  # rows per upsert job (SYNC_BACKLOG_PART_ROWS)
KEYS_BLOB = "keys.csv"  # the keys of a run staged by an earlier version, in one blob
KEYS_PER_BLOB = 50_000
# `line`: a digest of the row's CSV values, to tell apart rows Salesforce rejected under
# one external id (or none); keys of an earlier version lack it.
KEYS_COLUMNS = ["external_id", "record_key", "cursor", "line"]
# Records one round tracks (by hash, in a table sized once for them: 5 MB for a million,
# record_hashes.py) to stop before a record it staged already; a larger backlog is staged
# in rounds, each after the jobs of the one before ended (a smaller limit adds a wait for
# Salesforce's jobs at each round's end).
MAX_ROUND_RECORDS = 1_000_000


def backlog_store(service: Any, container: str, job: str, run_id: str) -> LoadStore:
    store = LoadStore.for_load(service, container, f"{job}/{run_id}")
    store.ensure_container()
    return store


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
    watermark = _owned_watermark(job, state, run_id)
    keyset, codec = job.source.keyset(), job.source.codec
    bound = codec.bound(upper_bound)
    if bound.value is None:
        return BacklogStaged(position=codec.stored_position(watermark.position))
    source = source or job.source.sql_source()
    spec = _sink_spec(job)
    size = max(job.page_size, READ_ROWS)
    staged_records = RecordHashes(max(round_records, 1))
    stopped = BacklogStop.BOUND

    def pages() -> Iterator[_StagedPage]:
        nonlocal stopped
        position = watermark.position
        mapping = _PageMapping(job)
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
        return _submit_part(job, spec, client, part, lambda job_id: record_job(
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


@dataclass
class _StagedPage:
    """A page of source rows as the part's CSV lines, keys.csv's lines and dead letters."""

    rows: int
    last: dict[str, Any]
    columns: list[str]
    lines: list[list[str]] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


class _PageMapping:
    """Masks and maps pages of rows into CSV lines; the first record's fields are the
    CSV's columns, and a record with other fields is dead-lettered."""

    def __init__(self, job: SyncJob) -> None:
        self.job = job
        self.columns: list[str] | None = None
        self.known: set[str] = set()
        self.external_at: int | None = None  # the external id's column

    def page(self, names: tuple[str, ...], found: list[Sequence[Any]]) -> _StagedPage:
        job, codec = self.job, self.job.source.codec
        keyset = job.source.keyset()
        cursor_at = names.index(keyset.cursor_column)
        keys_at = [names.index(column) for column in job.source.key_columns]
        external_id = _sink_spec(job).external_id_field
        page = _StagedPage(len(found), dict(zip(names, found[-1], strict=True)), [])
        masked_row = job.row_masker(names)
        for values in found:
            masked = masked_row(values)
            record_key = "/".join(str(values[index]) for index in keys_at)
            cursor = codec.cursor_text(values[cursor_at])
            try:
                record = job.map_record(masked)
                if self.columns is None:
                    self.columns, self.known = list(record), set(record)
                    self.external_at = (self.columns.index(external_id)
                                        if external_id in self.known else None)
                elif not record.keys() <= self.known:
                    raise ValueError(f"fields {sorted(set(record) - self.known)} are not in "
                                     "the first record's")
            except Exception as error:  # dead-lettered; it must not stop the run
                page.letters.append(DeadLetter(record_key, cursor, "MAPPING_FAILED",
                                               f"{type(error).__name__}: {error}",
                                               _text(masked)))
                continue
            values = list(map(record.get, self.columns, repeat(_ABSENT)))
            if NULL_MARKER in values:
                page.letters.append(DeadLetter(record_key, cursor, *NULL_MARKER_TEXT,
                                               _text(masked)))
                continue
            # Most values are text already: format_value only for the others. None and ""
            # clear the field, as in a page (Salesforce keeps no empty text); a field the
            # record lacks is empty in the CSV, which leaves it as it is.
            line = [value if value.__class__ is str and value
                    else "" if value is _ABSENT
                    else NULL_MARKER if value == "" else format_value(value, clear_nulls=True)
                    for value in values]
            page.lines.append(line)
            identifier = line[self.external_at] if self.external_at is not None else ""
            page.keys.append([identifier, record_key, cursor or "", _line_digest(line)])
        page.columns = self.columns or []
        return page


def submit_backlog_part(job: SyncJob, client: SalesforceClient, store: LoadStore,
                        run_id: str, blob: str) -> JobSnapshot:
    """One upsert job for a part staged in Blob Storage (runs staged before parts were
    submitted while staging)."""
    spec = _sink_spec(job)
    records = recorded_jobs_store(store, job.name)
    with store.download(blob) as part:
        return _submit_part(job, spec, client, part,
                            lambda job_id: record_job(records, run_id, job_id))


def _submit_part(job: SyncJob, spec: SalesforceSinkSpec, client: SalesforceClient,
                 part: Any, record: Callable[[str], None]) -> JobSnapshot:
    """One upsert job for the part: created, recorded (backlog_jobs.py) before any data
    goes to it, filled and closed (aborted if that fails)."""
    try:
        ingest = client.create_ingest_job(spec.sobject, "upsert", spec.external_id_field)
    except SalesforceError as error:
        raise _failure(job, error) from None
    try:
        record(ingest.id)
    except Exception:
        with contextlib.suppress(SalesforceError):
            client.abort_job(ingest.id)
        raise
    try:
        client.upload_job_data(ingest.id, part)
        snapshot = JobSnapshot.of(client.close_job(ingest.id))
    except SalesforceError as error:
        with contextlib.suppress(SalesforceError):
            client.abort_job(ingest.id)
        raise _failure(job, error) from None
    crash_point(BACKLOG_AFTER_PART_SUBMITTED)
    return snapshot


def finish_backlog(job: SyncJob, state: SyncState, store: LoadStore, client: SalesforceClient,
                   run_id: str, staged: BacklogStaged,
                   jobs: Sequence[JobSnapshot]) -> PagesResult:
    """Dead-letter what Salesforce rejected, then advance the watermark past the rows."""
    watermark = _owned_watermark(job, state, run_id)
    codec = job.source.codec
    assert staged.position is not None
    target = codec.position(staged.position)
    records = recorded_jobs_store(store, job.name)
    if watermark.position == target:  # a repeated finish: its checkpoint is written
        forget_jobs(records, (snapshot.id for snapshot in jobs))
        return PagesResult(totals=watermark.totals, position=staged.position, done=True)
    unsuccessful = [snapshot for snapshot in jobs if snapshot.unsuccessful]
    if unsuccessful:
        details = "; ".join(f"{snapshot.id} {snapshot.state}: {snapshot.error_message or ''}"
                            for snapshot in unsuccessful)
        raise SyncRunError(job.name, "BULK_JOB_FAILED",
                           f"Bulk API ingest jobs did not complete: {details}", retryable=False)
    try:
        rejected = _rejected_records(job, client, jobs)
    except SalesforceError as error:
        raise _failure(job, error) from None
    if rejected:
        _dead_letter(job, state, store, run_id, staged, rejected)
    failed = sum(map(len, rejected.values()))
    delivered = sum(snapshot.processed for snapshot in jobs) - failed
    before = watermark.totals
    parts = len(jobs)  # one upsert job per part
    totals = RunTotals(before.pages + parts, before.rows + staged.rows,
                       before.delivered + delivered,
                       before.dead_lettered + failed + staged.dead_lettered)
    try:
        watermark = state.watermarks.advance(job.name, job.source.cursor_kind, watermark,
                                             target, run_id, totals)
    except WatermarkConflict as error:
        raise SyncRunError(job.name, "WATERMARK_CONFLICT", str(error)) from None
    for blob in (*staged.parts, *_key_blobs(store, staged)):
        with contextlib.suppress(ResourceNotFoundError):
            store.container.delete_blob(blob)
    forget_jobs(records, (snapshot.id for snapshot in jobs))
    log.info("sync job %s: run %s loaded %d rows with Bulk API: %d delivered, %d rejected",
             job.name, run_id, staged.rows, delivered, failed)
    return PagesResult(parts, staged.rows, watermark.totals, staged.position, done=True)


@dataclass(frozen=True)
class _Rejected:
    code: str
    message: str
    record: dict[str, str]
    line: str  # _line_digest of the values as sent


def _rejected_records(job: SyncJob, client: SalesforceClient,
                      jobs: Sequence[JobSnapshot]) -> dict[str, list[_Rejected]]:
    """External id -> every failed record under it (rows without one: under "")."""
    external_id = _sink_spec(job).external_id_field
    rejected: dict[str, list[_Rejected]] = {}
    for snapshot in jobs:
        if snapshot.failed:
            for row in client.failed_results(snapshot.id):
                code, _, message = row.get("sf__Error", "").partition(":")
                record = {key: value for key, value in row.items() if not key.startswith("sf__")}
                rejected.setdefault(record.get(external_id, ""), []).append(_Rejected(
                    code or "REJECTED", message, record, _line_digest(list(record.values()))))
    return rejected


def _dead_letter(job: SyncJob, state: SyncState, store: LoadStore, run_id: str,
                 staged: BacklogStaged, rejected: dict[str, list[_Rejected]]) -> None:
    """A letter per rejected record: matched to its row by external id and values, else
    (values changed on the way, keys of an earlier version) by external id in order."""
    letters = []
    rejected = {identifier: list(found) for identifier, found in rejected.items()}
    unmatched: dict[str, list[dict[str, str]]] = {}
    for blob in _key_blobs(store, staged):
        with store.download(blob) as keys:
            for line in csv.DictReader(io.TextIOWrapper(keys, encoding="utf-8", newline="")):
                candidates = rejected.get(line["external_id"])
                if not candidates:
                    continue
                found = next((candidate for candidate in candidates
                              if candidate.line == line.get("line")), None)
                if found is None:
                    unmatched.setdefault(line["external_id"], []).append(line)
                    continue
                candidates.remove(found)
                letters.append(_letter(line, found))
    for identifier, lines in unmatched.items():
        letters += [_letter(line, found)
                    for line, found in zip(lines, rejected[identifier], strict=False)]
    state.dead_letters.add(job.name, run_id, letters)


def _letter(line: dict[str, str], rejected: _Rejected) -> DeadLetter:
    return DeadLetter(line["record_key"], line["cursor"] or None, rejected.code,
                      rejected.message, rejected.record)


def _line_digest(values: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(values).encode(), digest_size=12).hexdigest()


def _key_blobs(store: LoadStore, staged: BacklogStaged) -> tuple[str, ...]:
    return staged.keys or (store.name(KEYS_BLOB),)


def _owned_watermark(job: SyncJob, state: SyncState, run_id: str) -> Watermark:
    watermark = state.watermarks.read(job.name, job.source.cursor_kind,
                                      job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing",
        )
    return watermark


def _sink_spec(job: SyncJob) -> SalesforceSinkSpec:
    if not isinstance(job.sink, SalesforceSinkSpec):
        raise SyncRunError(job.name, "BACKLOG_NEEDS_SALESFORCE",
                           "backlog mode loads through Bulk API 2.0: the sink must be salesforce")
    return job.sink


def _failure(job: SyncJob, error: SalesforceError) -> SyncRunError:
    retryable = error.status == 0 or error.status == 429 or error.status >= 500
    return SyncRunError(job.name, error.error_code, f"Salesforce Bulk API: {error.message}",
                        retryable=retryable)


def _text(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, int | float | str | bool) or value is None
            else str(value) for key, value in values.items()}
