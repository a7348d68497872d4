"""The rows no page reads, a NULL key or a NULL cursor: found when a run begins and
dead-lettered once, never sent as a record, never a run's failure, never skipped unsaid.

Pages leave out a row whose key (any key column) is NULL, and a NULL cursor fails every
keyset comparison (shared/sql/keyset.py): such a row has no position a watermark could
hold, no record key a sink could write it by, and the three databases do not even agree
where NULL sorts. `find_null_rows` looks for them before the run claims the watermark;
`begin_run` dead-letters what it found and the claim counts them in the run's totals
(dead-lettered) and records what was reported, in one write:

- `NULL_KEY`: the rows with a NULL key whose cursor lies in the run's window: after what
  earlier runs checked (`NullRowsReported.keys_through`, or the watermark's cursor when
  later) up to the run's upper bound, one range of the `(cursor, key)` index a run. The
  claim records the bound as checked: each row is reported by the run whose window it
  entered, and by no later one (a run that failed too: its claim was written).
- `NULL_CURSOR`: a NULL cursor has no window. Each run reads the first `MAX_NULL_ROWS` such
  rows by key (the index's NULL entries) and dead-letters those the last run did not find
  (a digest of each is kept in the watermark row). A row that gets a cursor value is
  synced as any change (when its value lies after the watermark); one whose cursor goes
  back to NULL is reported again.

A run that found new ones logs one `sync rows not synced` warning. At most
`MAX_NULL_ROWS` of each kind a run: the NULL-key window then ends before the cursor of the
first row left out, which the next run reports.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.log_fields import log_event
from shared.sql.keyset import (
    UpperBound,
    normalise_cursor,
    null_cursor_statement,
    null_key_statement,
)
from shared.sql.source import SqlSource
from shared.sync.job import SyncJob
from shared.sync.positions import CursorCodec, StoredBound
from shared.sync.state import DeadLetter, Watermark
from shared.sync.state.dead_letters import jsonable_record
from shared.sync.state.watermarks import NullRowsReported

NULL_KEY = "NULL_KEY"
NULL_CURSOR = "NULL_CURSOR"
# Rows of each kind one run reads and reports (more wait for the next runs).
MAX_NULL_ROWS = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NullRows:
    """What a run found: the dead letters of the rows not reported before, and what the
    claim records as reported."""

    letters: list[DeadLetter]
    reported: NullRowsReported


def find_null_rows(job: SyncJob, source: SqlSource, run_id: str, watermark: Watermark,
                   bound: UpperBound, limit: int = MAX_NULL_ROWS) -> NullRows:
    """The rows with a NULL key in the run's window, and the rows with a NULL cursor the
    last run did not find, as dead letters (raises `SourceError`)."""
    keyset, codec = job.source.keyset(), job.source.codec
    reported = watermark.null_rows
    letters: list[DeadLetter] = []
    through = reported.keys_through
    left_out_at = None
    if bound.value is not None:
        after, at_too = _window_start(codec, watermark, through)
        names, found = source.fetch_tuples(
            null_key_statement(keyset, after, at_too, bound, limit + 1))
        found, checked, left_out_at = _within_limit(job, names, found, bound, limit)
        letters += _letters(job, names, found, NULL_KEY)
        through = _later(codec, through, codec.stored_bound(checked))
    names, found = source.fetch_tuples(null_cursor_statement(keyset, limit))
    digests = [_identity(job, names, values) for values in found]
    earlier = set(reported.cursor_rows)
    new_cursors = _letters(job, names, [
        values for values, digest in zip(found, digests, strict=True)
        if digest not in earlier], NULL_CURSOR)
    if letters or new_cursors:
        log_event(log, "sync rows not synced", level=logging.WARNING, job=job.name,
                  run_id=run_id, null_keys=len(letters), null_cursors=len(new_cursors),
                  cursors_still_null=len(found), relation=keyset.relation,
                  setting=job.view_setting, left_out_at=left_out_at)
    return NullRows(letters + new_cursors, NullRowsReported(through, tuple(digests)))


def _window_start(codec: CursorCodec, watermark: Watermark,
                  through: StoredBound | None) -> tuple[Any, bool]:
    """Where the run's NULL-key window starts: after the cursor checked through (at it
    too, when that bound left it out), or after the watermark's cursor when later."""
    position = watermark.position.cursor
    if through is not None:
        checked = codec.bound(through)
        if checked.value > position or (checked.value == position and not checked.inclusive):
            return checked.value, not checked.inclusive
    return position, False


def _later(codec: CursorCodec, before: StoredBound | None, now: StoredBound) -> StoredBound:
    """The later of two checked bounds: a bound that went back (a longer lag, a clock set
    back) does not make the next run report rows again."""
    if before is None:
        return now
    old, new = codec.bound(before), codec.bound(now)
    if old.value > new.value or (old.value == new.value and old.inclusive):
        return before
    return now


def _within_limit(job: SyncJob, names: tuple[str, ...], found: list[Sequence[Any]],
                  bound: UpperBound, limit: int
                  ) -> tuple[list[Sequence[Any]], UpperBound, str | None]:
    """At most `limit` of the rows (cursor order, one more read to tell), how far they
    cover the window (up to the bound, or before the first row left out), and the cursor
    value whose rows past the limit are left out for good (more than `limit` share it)."""
    if len(found) <= limit:
        return found, bound, None
    keyset = job.source.keyset()
    at = names.index(keyset.cursor_column)
    first_left = normalise_cursor(keyset, found[limit][at])
    kept = [values for values in found[:limit]
            if normalise_cursor(keyset, values[at]) < first_left]
    if kept:
        return kept, UpperBound(first_left, inclusive=False), None
    # More than `limit` rows share one cursor value: the rest of them are not reported.
    return found[:limit], UpperBound(first_left, inclusive=True), str(first_left)


def _letters(job: SyncJob, names: tuple[str, ...], rows: Sequence[Sequence[Any]],
             code: str) -> list[DeadLetter]:
    """A dead letter per row: the column, the view and its setting named, the row's masked
    values as the record; rows alike in key and cursor told apart (`_told_apart`)."""
    keyset, codec = job.source.keyset(), job.source.codec
    masked_row = job.row_masker(names)
    relation = f"{keyset.relation} (setting {job.view_setting})"
    letters = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        nulls = [column for column in keyset.key_columns if row[column] is None]
        if code == NULL_KEY:
            message = (f"key column {', '.join(nulls)} is NULL in {relation}: a row without "
                       "its key is not synced (no record key, no watermark position); give "
                       "it a key in the view, or leave it out there")
        else:
            message = (f"cursor column {keyset.cursor_column} is NULL in {relation}: a row "
                       "without a cursor value is never read by a run; give it one in the "
                       "view (it is then synced as a change), or leave it out there")
        record_key = "/".join("NULL" if row[column] is None else str(row[column])
                              for column in keyset.key_columns)
        letters.append(DeadLetter(
            record_key, codec.cursor_text(row[keyset.cursor_column]), code, message,
            jsonable_record(masked_row(values)),
            row_digest=_digest(values) if nulls else ""))
    return _told_apart(letters)


def _told_apart(letters: list[DeadLetter]) -> list[DeadLetter]:
    """Rows alike in every value (the same NULL key, cursor and columns) are numbered, so
    that each is one row of the dead-letter table, as each is counted."""
    seen: dict[tuple[str, str | None, str], int] = {}
    apart = []
    for letter in letters:
        alike = (letter.record_key, letter.cursor, letter.row_digest)
        seen[alike] = seen.get(alike, 0) + 1
        apart.append(letter if seen[alike] == 1 else
                     replace(letter, row_digest=f"{letter.row_digest}.{seen[alike]}"))
    return apart


def _identity(job: SyncJob, names: tuple[str, ...], values: Sequence[Any]) -> str:
    """A row with a NULL cursor: its key, or, a key with a NULL in it, all its values."""
    keys = [values[names.index(column)] for column in job.source.key_columns]
    return _digest(values if None in keys else keys)


def _digest(values: Sequence[Any]) -> str:
    text = "\x1f".join("\x00" if value is None else str(value) for value in values)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
