"""Backlog mode: a run that found more changed rows than its job's threshold loads them
with Bulk API 2.0 upsert jobs instead of sObject Collections pages. The steps, each an
activity, each in a module of its own:

    stage_backlog    (backlog_staging.py) the rows after the watermark up to the run's
                     bound, masked and mapped (backlog_mapping.py), written as ingest CSV
                     parts of at most `part_rows` rows (and MAX_UPLOAD_BYTES) on temporary
                     files; each part's upsert job is created, filled (streamed) and closed
                     as soon as the part is full (backlog_submission.py), so Salesforce
                     works on it while the next part is read (backlog_parts.py); and the
                     keys (external id -> record key and cursor, to dead-letter what
                     Salesforce rejects) to Blob Storage as they fill, in blobs of
                     KEYS_PER_BLOB rows ({container}/{job}/{run}/keys-{k}.csv);
                     rows the mapping rejects are dead-lettered here; reading stops before
                     a record's second change (its first may be in a job still running:
                     the jobs run side by side, the later change could be written first)
                     or after MAX_ROUND_RECORDS records (record_hashes.py), and the
                     orchestration goes on from the watermark the finish advanced: in
                     another round when this one staged more rows than the backlog
                     threshold, else by pages
    poll_jobs        (shared/bulkload/jobs.py) between durable timers, until every job ended,
                     and the jobs recorded by earlier attempts or failed runs too
                     (backlog_jobs.py: each job is recorded before its data is uploaded)
    finish_backlog   (backlog_finish.py) failed and unprocessed records to the dead-letter
                     table, then the watermark (and the run's totals) advanced past the
                     staged rows, under its ETag; the staged blobs are deleted

Each step is safe to repeat (the durable backend runs an activity at least once): a stage
repeated after a crash submits its parts again, and a part upserted twice changes nothing
(the jobs of the first try may still run: they are recorded, the run waits until they
ended before it writes on, and their outcomes are not counted; the second try's are); a
finish repeated after its checkpoint finds the watermark already there. A job that failed
as a whole fails the run with the watermark untouched: the next run loads the same rows
again, once the jobs of the failed run ended. `submit_backlog_part` loads a part staged
in Blob Storage, for runs staged by an earlier version that wrote parts there.

This module holds what the steps share: the run's store, the keys' layout, the watermark
the run must own, the Salesforce sink it needs, and how a Bulk API error fails the run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.bulkload.store import LoadStore
from shared.salesforce.errors import SalesforceError
from shared.sync.errors import SyncRunError
from shared.sync.job import SalesforceSinkSpec, SyncJob
from shared.sync.messages import BacklogStaged
from shared.sync.state import SyncState, Watermark

KEYS_BLOB = "keys.csv"  # the keys of a run staged by an earlier version, in one blob
# `line`: a digest of the row's CSV values, to tell apart rows Salesforce rejected under
# one external id (or none); keys of an earlier version lack it.
KEYS_COLUMNS = ["external_id", "record_key", "cursor", "line"]


def backlog_store(service: Any, container: str, job: str, run_id: str) -> LoadStore:
    store = LoadStore.for_load(service, container, f"{job}/{run_id}")
    store.ensure_container()
    return store


def key_blob_names(store: LoadStore, staged: BacklogStaged) -> tuple[str, ...]:
    return staged.keys or (store.name(KEYS_BLOB),)


def line_digest(values: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(values).encode(), digest_size=12).hexdigest()


def owned_watermark(job: SyncJob, state: SyncState, run_id: str) -> Watermark:
    watermark = state.watermarks.read(job.name, job.source.cursor_kind,
                                      job.source.initial_position)
    if watermark.run_id != run_id:
        raise SyncRunError(
            job.name, "RUN_SUPERSEDED",
            f"run {run_id} no longer owns the watermark (run {watermark.run_id} claimed it); "
            "this run stops without writing",
        )
    return watermark


def backlog_sink_spec(job: SyncJob) -> SalesforceSinkSpec:
    if not isinstance(job.sink, SalesforceSinkSpec):
        raise SyncRunError(job.name, "BACKLOG_NEEDS_SALESFORCE",
                           "backlog mode loads through Bulk API 2.0: the sink must be salesforce")
    return job.sink


def bulk_api_failure(job: SyncJob, error: SalesforceError) -> SyncRunError:
    retryable = error.status == 0 or error.status == 429 or error.status >= 500
    return SyncRunError(job.name, error.error_code, f"Salesforce Bulk API: {error.message}",
                        retryable=retryable)
