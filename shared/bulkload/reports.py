"""The reports of a load: its failures and its results as CSV, and the records of a level
that failed before its results could be read.

The reports are what users download and open in a spreadsheet: every cell is neutralised
(`shared.spreadsheet_cells`). The per-level files they are made of keep the values as sent,
for a retry of the failed records.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from shared.bulkload.leaf_results import has_kept_successes
from shared.bulkload.levels import (
    FAILED_FILE,
    FAILURE_COLUMNS,
    ORPHANS_FILE,
    RESULT_COLUMNS,
    SUCCEEDED_FILE,
    CsvOut,
    csv_rows,
    failure_row,
    failure_writer,
    orphan_reason,
    read_failure_reasons,
    read_id_map,
    write_leaf_successes,
)
from shared.bulkload.load_events import log_level_failed
from shared.bulkload.messages import FailuresReport, LevelError, LevelResults
from shared.bulkload.request import LoadLevel
from shared.bulkload.staged import records_file, staged_columns, staged_records
from shared.bulkload.store import LoadStore, spooled_file
from shared.crash_points import crash_point
from shared.spreadsheet_cells import spreadsheet_safe

FAILURES_REPORT = "failures.csv"
# The failures report is written, the activity's result is not recorded.
FAILURES_REPORT_WRITTEN = "bulkload.failures.after_report"
RESULTS_REPORT = "results.csv"


def write_reports(store: LoadStore, level_count: int) -> FailuresReport:
    """Every failed, unprocessed and orphaned record of the load in one CSV. The results
    CSV is written when it is first asked for (`write_results_report`): it is as large as
    the load, and the load is done without it."""
    failures = _concatenate(store, level_count, (FAILED_FILE, ORPHANS_FILE), FAILURE_COLUMNS,
                            FAILURES_REPORT)
    crash_point(FAILURES_REPORT_WRITTEN)
    return FailuresReport(store.name(FAILURES_REPORT), failures)


def write_results_report(store: LoadStore, levels: Sequence[LoadLevel]) -> str:
    """Every loaded record with its Salesforce id in one CSV; returns its blob name. A leaf
    level's successes kept as Salesforce sent them (leaf_results.py) are read here."""
    with contextlib.ExitStack() as files:
        locals_ = []
        for index in range(len(levels)):
            local = files.enter_context(store.download_if_exists(
                store.level_blob(index, SUCCEEDED_FILE)))
            if local is None and has_kept_successes(store, index):
                local = files.enter_context(spooled_file())
                write_leaf_successes(store, levels, index, local)
                local.seek(0)
            if local is not None:
                locals_.append(local)
        _write_report(store, locals_, RESULT_COLUMNS, RESULTS_REPORT)
    return store.name(RESULTS_REPORT)


def _concatenate(store: LoadStore, level_count: int, names: Sequence[str],
                 first_columns: Sequence[str], report_name: str) -> int:
    blobs = [store.level_blob(index, name) for index in range(level_count) for name in names]
    with contextlib.ExitStack() as downloads:
        # Downloaded side by side: a report costs one round trip, not one per file.
        files = [downloads.enter_context(tempfile.TemporaryFile()) for _ in blobs]
        with ThreadPoolExecutor(4, thread_name_prefix="bulkload-report") as pool:
            found = list(pool.map(store.download_into, blobs, files))
        return _write_report(store, [local for local, kept in zip(files, found, strict=True)
                                     if kept], first_columns, report_name)


def _write_report(store: LoadStore, files: Sequence[IO[bytes]], first_columns: Sequence[str],
                  report_name: str) -> int:
    columns: dict[str, None] = dict.fromkeys(first_columns)
    rows = 0
    # Each file once: its header for the report's columns, then its rows.
    for local in files:
        header = local.readline().decode("utf-8").rstrip("\r\n")
        for name in next(csv.reader([header]), []):
            columns.setdefault(name, None)
    with spooled_file() as report_file:
        report = CsvOut(report_file, [spreadsheet_safe(name) for name in columns])
        for local in files:
            local.seek(0)
            for row in csv_rows(local):
                report.writerow([spreadsheet_safe(row.get(name) or "") for name in columns])
                rows += 1
        report.finish()
        report_file.seek(0)
        store.upload_file(store.name(report_name), report_file)
    return rows


def report_level_failure(store: LoadStore, levels: Sequence[LoadLevel], level_index: int,
                         error: LevelError) -> LevelResults:
    """Write every record of a level whose results were never read to its failures: those
    with a loaded parent as `failed` with the level's error, the others as orphans (unless
    staging already reported them). Returns the records reported failed."""
    level = levels[level_index]
    parent = levels[level.parent] if level.parent is not None else None
    parent_ids = read_id_map(store, level.parent) if level.parent is not None else {}
    parent_errors = read_failure_reasons(store, level.parent) if level.parent is not None \
        else {}
    orphans_reported = store.exists(store.level_blob(level_index, ORPHANS_FILE))
    failed = 0
    with records_file(store, level_index) as local:
        columns = dict.fromkeys(staged_columns(local))
        with spooled_file() as failed_file, spooled_file() as orphans_file:
            failed_out = failure_writer(failed_file, list(columns))
            orphans_out = failure_writer(orphans_file, list(columns))
            for external_id, parent_id, fields in staged_records(local):
                if parent is not None and parent_id not in parent_ids:
                    if not orphans_reported:
                        orphans_out.writerow_dict(failure_row(
                            level, "orphaned",
                            orphan_reason(parent, parent_id or "", parent_errors.get(
                                parent_id or "")),
                            external_id, parent_id, fields))
                    continue
                failed_out.writerow_dict(failure_row(level, "failed", error.as_error(),
                                                     external_id, parent_id, fields))
                failed += 1
            for writer, file, name in ((failed_out, failed_file, FAILED_FILE),
                                       (orphans_out, orphans_file, ORPHANS_FILE)):
                writer.finish()
                if name == ORPHANS_FILE and orphans_reported:
                    continue
                file.seek(0)
                store.upload_file(store.level_blob(level_index, name), file)
    results = LevelResults(failed=failed, failed_by_error={error.code.value: failed})
    log_level_failed(store, levels, level_index, error, results)
    return results
