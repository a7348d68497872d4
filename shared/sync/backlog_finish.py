"""A backlog round's last step, once every job ended: what Salesforce rejected to the
dead-letter table, matched to its source row through the keys staged in Blob Storage,
then the watermark (and the run's totals) advanced past the staged rows under its ETag,
the staged blobs deleted and the round's jobs forgotten (backlog_jobs.py).

A finish repeated after its checkpoint finds the watermark already there and only forgets
the jobs. A job that failed as a whole fails the run with the watermark untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

from shared.bulkload.messages import JobSnapshot
from shared.bulkload.store import LoadStore
from shared.salesforce import SalesforceClient
from shared.salesforce.errors import SalesforceError
from shared.sync.backlog import (
    backlog_sink_spec,
    bulk_api_failure,
    key_blob_names,
    line_digest,
    owned_watermark,
)
from shared.sync.backlog_jobs import forget_jobs, recorded_jobs_store
from shared.sync.errors import SyncRunError
from shared.sync.job import SyncJob
from shared.sync.messages import BacklogStaged, PagesResult, RunTotals
from shared.sync.state import DeadLetter, SyncState, WatermarkConflict

log = logging.getLogger(__name__)


def finish_backlog(job: SyncJob, state: SyncState, store: LoadStore, client: SalesforceClient,
                   run_id: str, staged: BacklogStaged,
                   jobs: Sequence[JobSnapshot]) -> PagesResult:
    """Dead-letter what Salesforce rejected, then advance the watermark past the rows."""
    watermark = owned_watermark(job, state, run_id)
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
        raise bulk_api_failure(job, error) from None
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
    for blob in (*staged.parts, *key_blob_names(store, staged)):
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
    line: str  # line_digest of the values as sent


def _rejected_records(job: SyncJob, client: SalesforceClient,
                      jobs: Sequence[JobSnapshot]) -> dict[str, list[_Rejected]]:
    """External id -> every failed record under it (rows without one: under "")."""
    external_id = backlog_sink_spec(job).external_id_field
    rejected: dict[str, list[_Rejected]] = {}
    for snapshot in jobs:
        if snapshot.failed:
            for row in client.failed_results(snapshot.id):
                code, _, message = row.get("sf__Error", "").partition(":")
                record = {key: value for key, value in row.items() if not key.startswith("sf__")}
                rejected.setdefault(record.get(external_id, ""), []).append(_Rejected(
                    code or "REJECTED", message, record, line_digest(list(record.values()))))
    return rejected


def _dead_letter(job: SyncJob, state: SyncState, store: LoadStore, run_id: str,
                 staged: BacklogStaged, rejected: dict[str, list[_Rejected]]) -> None:
    """A letter per rejected record: matched to its row by external id and values, else
    (values changed on the way, keys of an earlier version) by external id in order."""
    letters = []
    rejected = {identifier: list(found) for identifier, found in rejected.items()}
    unmatched: dict[str, list[dict[str, str]]] = {}
    for blob in key_blob_names(store, staged):
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
