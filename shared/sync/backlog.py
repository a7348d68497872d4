"""Backlog mode: a run that found more changed rows than its job's threshold loads them
with Bulk API 2.0 upsert jobs instead of sObject Collections pages.

    stage_backlog    the rows after the watermark up to the run's bound, masked and mapped,
                     as ingest CSV parts of at most MAX_UPLOAD_BYTES in Blob Storage
                     ({container}/{job}/{run}/part-{k}.csv), plus keys.csv (external id ->
                     record key and cursor, to dead-letter what Salesforce rejects);
                     rows the mapping rejects are dead-lettered here
    submit_backlog_part   one upsert job per part: create, upload (streamed), close
    poll_jobs        (shared/bulkload/jobs.py) between durable timers, until every job ended
    finish_backlog   failed and unprocessed records to the dead-letter table, then the
                     watermark (and the run's totals) advanced past the staged rows, under
                     its ETag; the staged blobs are deleted

Each step is safe to repeat (the durable backend runs an activity at least once): a part
submitted twice is upserted twice, which changes nothing; a finish repeated after its
checkpoint finds the watermark already there. A job that failed as a whole fails the run
with the watermark untouched: the next run loads the same rows again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.salesforce import (
    MAX_UPLOAD_BYTES,
    SalesforceClient,
    split_ingest_csv,
    write_ingest_csv,
)
from shared.salesforce.errors import SalesforceError
from shared.sql.keyset import page_statement, position_of
from shared.sql.source import SourceError, SqlSource
from shared.sync.errors import SyncRunError
from shared.sync.job import SalesforceSinkSpec, SyncJob
from shared.sync.messages import BacklogStaged, PagesResult, RunTotals
from shared.sync.positions import StoredBound
from shared.sync.read_ahead import ReadAhead
from shared.sync.state import DeadLetter, SyncState, Watermark, WatermarkConflict

log = logging.getLogger(__name__)

READ_ROWS = 5000  # rows per source query while staging
KEYS_BLOB = "keys.csv"


def backlog_store(service: Any, container: str, job: str, run_id: str) -> LoadStore:
    store = LoadStore.for_load(service, container, f"{job}/{run_id}")
    store.ensure_container()
    return store


def stage_backlog(job: SyncJob, state: SyncState, store: LoadStore, run_id: str,
                  upper_bound: StoredBound, max_part_bytes: int = MAX_UPLOAD_BYTES,
                  source: SqlSource | None = None) -> BacklogStaged:
    watermark = _owned_watermark(job, state, run_id)
    keyset, codec = job.source.keyset(), job.source.codec
    bound = codec.bound(upper_bound)
    if bound.value is None:
        return BacklogStaged(position=codec.stored_position(watermark.position))
    source = source or job.source.sql_source()
    size = max(job.page_size, READ_ROWS)

    def pages() -> Iterator[list[dict[str, Any]]]:
        position = watermark.position
        while True:
            try:
                page = source.fetch_rows(page_statement(keyset, position, bound, size))
            except SourceError as error:
                raise SyncRunError(job.name, error.code, error.message) from None
            if page:
                yield page
            if len(page) < size:
                return
            position = position_of(keyset, page[-1])

    rows = rejected = 0
    last: dict[str, Any] | None = None
    columns: list[str] | None = None
    external_id = _sink_spec(job).external_id_field
    with tempfile.TemporaryFile() as records_file, tempfile.TemporaryFile() as keys_file:
        keys = io.TextIOWrapper(keys_file, encoding="utf-8", newline="")
        key_writer = csv.writer(keys, lineterminator="\n")
        key_writer.writerow(["external_id", "record_key", "cursor"])

        def mapped(page: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal rejected, columns
            letters = []
            for row in page:
                masked = job.mask(row)
                try:
                    record = job.map_record(masked)
                    if columns is None:
                        columns = list(record)
                    elif not set(record) <= set(columns):
                        raise ValueError(f"fields {sorted(set(record) - set(columns))} are "
                                         "not in the first record's")
                except Exception as error:  # dead-lettered; it must not stop the run
                    letters.append(DeadLetter(
                        job.record_key(row), codec.cursor_text(row[keyset.cursor_column]),
                        "MAPPING_FAILED", f"{type(error).__name__}: {error}", _text(masked)))
                    continue
                key_writer.writerow([record.get(external_id), job.record_key(row),
                                     codec.cursor_text(row[keyset.cursor_column])])
                yield record
            if letters:
                state.dead_letters.add(job.name, run_id, letters)
                rejected += len(letters)

        def records() -> Iterator[dict[str, Any]]:
            nonlocal rows, last
            with ReadAhead(pages()) as reader:
                for page in reader:
                    rows += len(page)
                    last = page[-1]
                    yield from mapped(page)

        staged = _write_csv(records(), records_file, lambda: columns)
        keys.flush()
        keys_file.seek(0)
        store.upload_file(store.name(KEYS_BLOB), keys_file)
        keys.detach()
        parts: list[str] = []
        if staged:
            records_file.seek(0)
            for part, stream in split_ingest_csv(records_file, max_part_bytes):
                blob = store.name(f"part-{part.index}.csv")
                store.upload_file(blob, stream)
                parts.append(blob)
    position = watermark.position if last is None else position_of(keyset, last)
    log.info("sync job %s: run %s staged %d changed rows in %d parts for Bulk API (%d "
             "rejected by the mapping)", job.name, run_id, rows, len(parts), rejected)
    return BacklogStaged(tuple(parts), rows, rejected, codec.stored_position(position))


def _write_csv(records: Iterator[dict[str, Any]], out: Any, columns: Any) -> int:
    """The records as ingest CSV; the header is the first record's fields."""
    first = next(records, None)
    if first is None:
        return 0

    def all_records() -> Iterator[dict[str, Any]]:
        yield first
        yield from records

    return write_ingest_csv(all_records(), columns(), out)


def submit_backlog_part(job: SyncJob, client: SalesforceClient, store: LoadStore,
                        blob: str) -> JobSnapshot:
    """One upsert job for the part: created, filled and closed (aborted if that fails)."""
    spec = _sink_spec(job)
    try:
        ingest = client.create_ingest_job(spec.sobject, "upsert", spec.external_id_field)
    except SalesforceError as error:
        raise _failure(job, error) from None
    try:
        with store.download(blob) as part:
            client.upload_job_data(ingest.id, part)
        return JobSnapshot.of(client.close_job(ingest.id))
    except SalesforceError as error:
        with contextlib.suppress(SalesforceError):
            client.abort_job(ingest.id)
        raise _failure(job, error) from None


def finish_backlog(job: SyncJob, state: SyncState, store: LoadStore, client: SalesforceClient,
                   run_id: str, staged: BacklogStaged,
                   jobs: Sequence[JobSnapshot]) -> PagesResult:
    """Dead-letter what Salesforce rejected, then advance the watermark past the rows."""
    watermark = _owned_watermark(job, state, run_id)
    codec = job.source.codec
    assert staged.position is not None
    target = codec.position(staged.position)
    if watermark.position == target:  # a repeated finish: its checkpoint is written
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
        _dead_letter(job, state, store, run_id, rejected)
    failed = len(rejected)
    delivered = sum(snapshot.processed for snapshot in jobs) - failed
    before = watermark.totals
    totals = RunTotals(before.pages + len(staged.parts), before.rows + staged.rows,
                       before.delivered + delivered,
                       before.dead_lettered + failed + staged.dead_lettered)
    try:
        watermark = state.watermarks.advance(job.name, job.source.cursor_kind, watermark,
                                             target, run_id, totals)
    except WatermarkConflict as error:
        raise SyncRunError(job.name, "WATERMARK_CONFLICT", str(error)) from None
    for blob in (*staged.parts, store.name(KEYS_BLOB)):
        with contextlib.suppress(ResourceNotFoundError):
            store.container.delete_blob(blob)
    log.info("sync job %s: run %s loaded %d rows with Bulk API: %d delivered, %d rejected",
             job.name, run_id, staged.rows, delivered, failed)
    return PagesResult(len(staged.parts), staged.rows, watermark.totals, staged.position,
                       done=True)


def _rejected_records(job: SyncJob, client: SalesforceClient,
                      jobs: Sequence[JobSnapshot]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """External id -> (code, message, record) of every failed or unprocessed record."""
    external_id = _sink_spec(job).external_id_field
    rejected: dict[str, tuple[str, str, dict[str, str]]] = {}
    for snapshot in jobs:
        if snapshot.failed:
            for row in client.failed_results(snapshot.id):
                code, _, message = row.get("sf__Error", "").partition(":")
                record = {key: value for key, value in row.items() if not key.startswith("sf__")}
                rejected[record.get(external_id, "")] = (code or "REJECTED", message, record)
    return rejected


def _dead_letter(job: SyncJob, state: SyncState, store: LoadStore, run_id: str,
                 rejected: dict[str, tuple[str, str, dict[str, str]]]) -> None:
    letters = []
    with store.download(store.name(KEYS_BLOB)) as keys:
        for line in csv.DictReader(io.TextIOWrapper(keys, encoding="utf-8", newline="")):
            found = rejected.get(line["external_id"])
            if found is not None:
                code, message, record = found
                letters.append(DeadLetter(line["record_key"], line["cursor"] or None, code,
                                          message, record))
    state.dead_letters.add(job.name, run_id, letters)


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
