"""A level's data steps: stage its CSV (dropping orphans), then read its jobs' results.

Children are written with their parent's Salesforce id in the parent reference field
(`AccountId`), taken from the parent level's ID map, rather than with a relationship
column (`Account.External_Id__c`). The map is needed anyway to know which parents were
loaded; with it a child can only point at the very record this load created or updated,
the parent needs no Salesforce external-id field (an inserted parent works), a level may
hang off any earlier level (Salesforce resolves relationship columns one level up only),
and Salesforce does no per-row lookup.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from shared.bulkload.leaf_results import copy_leaf_successes, is_leaf, leaf_success_rows
from shared.bulkload.load_events import log_level_ended, log_level_staged
from shared.bulkload.messages import JobSnapshot, LevelResults, StagedLevel, StagedPart
from shared.bulkload.request import LoadLevel
from shared.bulkload.staged import level_records
from shared.bulkload.store import LoadStore, spooled_file
from shared.crash_points import crash_point
from shared.salesforce import (
    NULL_MARKER,
    SalesforceClient,
    split_ingest_csv,
    write_ingest_csv_lines,
)

# collect results: the succeeded and failed files are written, the ID map is not.
RESULTS_ID_MAP_WRITTEN = "bulkload.results.before_id_map"
# collect results: every file is written, the activity's result is not recorded.
RESULTS_WRITTEN = "bulkload.results.after_write"

FAILURE_COLUMNS = ["level", "object", "kind", "error", "externalId", "parentExternalId"]
RESULT_COLUMNS = ["level", "object", "sfId", "created", "externalId", "parentExternalId"]
ID_MAP_COLUMNS = ["externalId", "sfId"]
ID_MAP_FILE = "idmap.csv"
INHERITED_ID_MAP_FILE = "idmap-inherited.csv"
FAILED_FILE = "failed.csv"
SUCCEEDED_FILE = "succeeded.csv"
ORPHANS_FILE = "orphans.csv"


# -- staging a level's CSV ----------------------------------------------------------------


def stage_level(
    store: LoadStore, levels: Sequence[LoadLevel], level_index: int, upload_limit: int,
    skip_reason: str | None = None, parent_ids: Mapping[str, str] | None = None,
) -> StagedLevel:
    """Write the level's CSV part(s) and its orphans; with `skip_reason` all are orphans.
    `parent_ids` is the parent level's ID map when the caller has it (`read_id_map`).

    A child whose parent is not in the parent level's ID map is not written to the CSV: it
    goes to orphans.csv with the parent's own error, so it is never submitted.
    """
    level = levels[level_index]
    parts: list[StagedPart] = []
    orphan_count = 0
    parent = levels[level.parent] if level.parent is not None else None
    # Prepared while the parent's jobs ran: only the parents are left to look up.
    with level_records(store, level_index, prepared=parent is not None and skip_reason is None
                       ) as (columns, records):
        if not columns:  # no records (a level of a retry with nothing to retry)
            return StagedLevel()
        csv_columns = columns + (
            [level.parent_reference_field] if level.parent_reference_field else []
        )
        parent_errors: dict[str, str] = {}
        if level.parent is None or skip_reason is not None:
            parent_ids = {}
        else:
            if parent_ids is None:
                parent_ids = read_id_map(store, level.parent)
            parent_errors = read_failure_reasons(store, level.parent)

        with spooled_file() as data, spooled_file() as orphans_file:
            orphans = failure_writer(orphans_file, columns)

            def rows() -> Iterator[list[str]]:
                nonlocal orphan_count
                for external_id, parent_external_id, values in records:
                    reason = skip_reason
                    parent_id = None
                    if reason is None and parent is not None:
                        parent_id = parent_ids.get(parent_external_id or "")
                        if parent_id is None:
                            reason = orphan_reason(parent, parent_external_id or "",
                                                   parent_errors.get(parent_external_id or ""))
                    if reason is not None:
                        orphans.writerow_dict(failure_row(
                            level, "orphaned", reason, external_id, parent_external_id,
                            dict(zip(columns, values, strict=True))))
                        orphan_count += 1
                        continue
                    if level.parent_reference_field:
                        values.append(parent_id or "")
                    yield values

            submitted = write_ingest_csv_lines(rows(), csv_columns, data)
            orphans.finish()
            _flush(orphans_file)
            store.upload_file(store.level_blob(level_index, ORPHANS_FILE), orphans_file)
            if submitted:
                size = data.tell()
                data.seek(0)
                if size <= upload_limit:
                    # One part: the CSV as written, without reading it back to split it.
                    blob = store.level_blob(level_index, "part-0.csv")
                    store.upload_file(blob, data)
                    parts.append(StagedPart(blob, submitted, size))
                else:
                    for part, stream in split_ingest_csv(data, upload_limit):
                        blob = store.level_blob(level_index, f"part-{part.index}.csv")
                        store.upload_file(blob, stream)
                        parts.append(StagedPart(blob, part.records, part.size_bytes))
    staged = StagedLevel(tuple(parts), submitted, orphan_count, tuple(columns))
    log_level_staged(store, levels, level_index, staged, skipped=skip_reason is not None)
    return staged


def orphan_reason(parent: LoadLevel, parent_external_id: str, parent_error: str | None) -> str:
    cause = parent_error or "no result came back for it"
    return (f"PARENT_NOT_LOADED:parent {parent.object} {parent_external_id!r} was not loaded: "
            f"{cause}")


# -- ID maps and failure files ----------------------------------------------------------------


def read_id_map(store: LoadStore, level_index: int,
                names: Sequence[str] = (INHERITED_ID_MAP_FILE, ID_MAP_FILE)) -> dict[str, str]:
    """External id -> Salesforce id of the level's loaded records, with those a retried
    load inherited from the load it retries (its own win)."""
    id_map: dict[str, str] = {}
    for name in names:
        with store.download_if_exists(store.level_blob(level_index, name)) as local:
            if local is not None:
                id_map.update((row["externalId"], row["sfId"]) for row in csv_rows(local))
    return id_map


def read_failure_reasons(store: LoadStore, level_index: int) -> dict[str, str]:
    reasons: dict[str, str] = {}
    for name in (FAILED_FILE, ORPHANS_FILE):
        with store.download_if_exists(store.level_blob(level_index, name)) as local:
            if local is None:
                continue
            for row in csv_rows(local):
                if row["externalId"]:
                    reasons[row["externalId"]] = row["error"]
    return reasons


def csv_rows(local: IO[bytes]) -> Iterator[dict[str, str]]:
    text = io.TextIOWrapper(local, encoding="utf-8", newline="")
    try:
        yield from csv.DictReader(text)
    finally:
        text.detach()


class CsvOut:
    """A csv.writer over a binary file (the wrapper is detached, never closes the file)."""

    def __init__(self, out: IO[bytes], header: Sequence[str]) -> None:
        self.text = io.TextIOWrapper(out, encoding="utf-8", newline="")
        self.writer = csv.writer(self.text, lineterminator="\n")
        self.header = list(header)
        self.writer.writerow(self.header)

    def writerow(self, values: Sequence[Any]) -> None:
        self.writer.writerow(values)

    def writerow_dict(self, row: Mapping[str, Any]) -> None:
        self.writer.writerow([row.get(column, "") for column in self.header])

    def finish(self) -> None:
        self.text.flush()
        self.text.detach()


def failure_writer(out: IO[bytes], columns: Sequence[str]) -> CsvOut:
    return CsvOut(out, [*FAILURE_COLUMNS, *columns])


def failure_row(
    level: LoadLevel, kind: str, error: str, external_id: str | None,
    parent_external_id: str | None, fields: Mapping[str, Any],
) -> dict[str, Any]:
    return {"level": level.name, "object": level.object, "kind": kind, "error": error,
            "externalId": external_id or "", "parentExternalId": parent_external_id or "",
            # Null as the ingest CSV sends it (#N/A clears the field): a retry sends it again.
            **{name: NULL_MARKER if value is None else value for name, value in fields.items()}}


def _flush(out: IO[bytes]) -> None:
    out.flush()
    out.seek(0)


# -- results ------------------------------------------------------------------------------


def collect_level_results(
    store: LoadStore, client: SalesforceClient, levels: Sequence[LoadLevel], level_index: int,
    jobs: Sequence[JobSnapshot], columns: Sequence[str],
    id_map_kept: dict[str, str] | None = None,
) -> LevelResults:
    """Read every job's results as streams: the ID map and the failed/unprocessed records;
    with `id_map_kept`, the ID map is also put there (for a child level staged next).

    Rows are matched by the echoed external id, never by position (Salesforce does not
    keep input order). Records of a Failed or Aborted job that were never processed are
    reported with the job's errorMessage.
    """
    level = levels[level_index]
    leaf = is_leaf(levels, level_index)
    reverse_parent: dict[str, str] = {}
    # Rows read here name their parent by its Salesforce id: a leaf's are only its failed
    # and unprocessed ones, so a leaf whose jobs failed none needs no parent ids.
    if level.parent is not None and (not leaf or any(job.failed > 0 or job.unsuccessful
                                                     for job in jobs)):
        reverse_parent = {sf_id: ext for ext, sf_id in read_id_map(store, level.parent).items()}
    with spooled_file() as id_map_file, spooled_file() as failed_file, \
            spooled_file() as succeeded_file:
        id_map = CsvOut(id_map_file, ID_MAP_COLUMNS)
        failed = failure_writer(failed_file, columns)
        loaded = CsvOut(succeeded_file, [*RESULT_COLUMNS, *columns])
        # Successes and failures are separate downloads into separate files: read both at
        # once, so a level costs its longer list rather than the sum of its lists.
        with ThreadPoolExecutor(1, thread_name_prefix="bulkload-failures") as pool:
            failures = pool.submit(_read_failures, client, jobs, level, columns, reverse_parent,
                                   failed)
            if leaf:  # kept as sent, read by the results report when it is asked for
                succeeded = copy_leaf_successes(store, client, jobs, level_index)
            else:
                succeeded = _read_successes(client, jobs, level, columns, reverse_parent,
                                            id_map, loaded, id_map_kept)
            failed_count, unprocessed, failed_by_error = failures.result()
        outputs = ((failed, failed_file, FAILED_FILE),) if leaf else (
            (loaded, succeeded_file, SUCCEEDED_FILE), (failed, failed_file, FAILED_FILE),
            (id_map, id_map_file, ID_MAP_FILE))
        for writer, file, name in outputs:
            # The ID map last: a level with an ID map has its reports written.
            writer.finish()
            file.seek(0)
            if name == ID_MAP_FILE:
                crash_point(RESULTS_ID_MAP_WRITTEN)
            store.upload_file(store.level_blob(level_index, name), file)
        crash_point(RESULTS_WRITTEN)
    results = LevelResults(succeeded, failed_count, unprocessed,
                           dict(sorted(failed_by_error.items())))
    log_level_ended(store, levels, level_index, jobs, results)
    return results


def _read_successes(
    client: SalesforceClient, jobs: Sequence[JobSnapshot], level: LoadLevel,
    columns: Sequence[str], reverse_parent: Mapping[str, str], id_map: CsvOut, loaded: CsvOut,
    id_map_kept: dict[str, str] | None,
) -> int:
    succeeded = 0
    for job in jobs:
        # A job's counts tell which result lists are empty: those are not read.
        if not (job.processed > job.failed or job.unsuccessful):
            continue
        for row in _ResultRows(client.result_rows(job.id, "successfulResults"), level,
                               columns, reverse_parent):
            succeeded += 1
            sf_id, created, external_id, parent_external_id, fields = row
            if level.external_id_field:
                id_map.writerow([external_id, sf_id])
                if id_map_kept is not None:
                    id_map_kept[external_id] = sf_id
            loaded.writerow([level.name, level.object, sf_id, created, external_id,
                             parent_external_id, *fields])
    return succeeded


def _read_failures(
    client: SalesforceClient, jobs: Sequence[JobSnapshot], level: LoadLevel,
    columns: Sequence[str], reverse_parent: Mapping[str, str], failed: CsvOut,
) -> tuple[int, int, Counter[str]]:
    """The failed records, and the unprocessed ones of a Failed or Aborted job."""
    failed_count = unprocessed = 0
    failed_by_error: Counter[str] = Counter()
    for job in jobs:
        if job.failed > 0 or job.unsuccessful:
            for row in _ResultRows(client.result_rows(job.id, "failedResults"), level,
                                   columns, reverse_parent):
                failed_count += 1
                error, _, external_id, parent_external_id, fields = row
                failed_by_error[error_code(error)] += 1
                failed.writerow([level.name, level.object, "failed", error, external_id,
                                 parent_external_id, *fields])
        if job.unsuccessful:
            message = job.error_message or f"the job ended {job.state}"
            error = f"JOB_{job.state.upper()}:{message}"
            for row in _ResultRows(client.result_rows(job.id, "unprocessedrecords"), level,
                                   columns, reverse_parent):
                unprocessed += 1
                _, _, external_id, parent_external_id, fields = row
                failed.writerow([level.name, level.object, "unprocessed", error,
                                 external_id, parent_external_id, *fields])
    return failed_count, unprocessed, failed_by_error


ResultRow = tuple[str, str, str, str, tuple[str, ...]]


class _ResultRows:
    """One result list of a job, each row as (sf__Id or sf__Error, sf__Created, external
    id, parent's external id, the level's columns): the columns are looked up once per
    list, not per row, since a level's results are as many rows as its records."""

    def __init__(self, rows: Iterator[list[str]], level: LoadLevel, columns: Sequence[str],
                 reverse_parent: Mapping[str, str]) -> None:
        self.rows = rows
        self.level = level
        self.columns = columns
        self.reverse_parent = reverse_parent

    def __iter__(self) -> Iterator[ResultRow]:
        header = next(self.rows, None)
        if header is None:
            return
        width = len(header)
        # A name a list lacks reads the "" appended to every row; a repeated name its last.
        position = {name: index for index, name in enumerate(header)}
        first = "sf__Error" if "sf__Error" in position else "sf__Id"
        at = [position.get(name, width) if name else width for name in (
            first, "sf__Created", self.level.external_id_field,
            self.level.parent_reference_field)]
        # The level's own columns, never the parent reference (its external id is given).
        fields = [width if name == self.level.parent_reference_field
                  else position.get(name, width) for name in self.columns]
        reverse_parent = self.reverse_parent
        for row in self.rows:
            if len(row) != width:
                row = (row + [""] * width)[:width]
            row.append("")
            parent_sf_id = row[at[3]]
            yield (row[at[0]], row[at[1]], row[at[2]],
                   reverse_parent.get(parent_sf_id, parent_sf_id),
                   tuple([row[index] for index in fields]))


def error_code(sf_error: str) -> str:
    """`REQUIRED_FIELD_MISSING` from `REQUIRED_FIELD_MISSING:Required fields are missing`."""
    code = sf_error.split(":", 1)[0].strip()
    return code or "UNKNOWN_ERROR"


def write_leaf_successes(store: LoadStore, levels: Sequence[LoadLevel], level_index: int,
                         out: IO[bytes]) -> None:
    """A leaf level's kept successes (leaf_results.py) as its succeeded file would be."""
    level = levels[level_index]
    reverse_parent: dict[str, str] = {}
    if level.parent is not None:
        reverse_parent = {sf_id: ext for ext, sf_id in read_id_map(store, level.parent).items()}
    loaded: CsvOut | None = None
    for header, rows in leaf_success_rows(store, level_index):
        # The level's own columns, as Salesforce echoed them.
        columns = [name for name in header if not name.startswith("sf__")
                   and name != level.parent_reference_field]
        if loaded is None:
            loaded = CsvOut(out, [*RESULT_COLUMNS, *columns])
        for sf_id, created, external_id, parent_external_id, fields in _ResultRows(
                itertools.chain([header], rows), level, columns, reverse_parent):
            loaded.writerow([level.name, level.object, sf_id, created, external_id,
                             parent_external_id, *fields])
    if loaded is not None:
        loaded.finish()
