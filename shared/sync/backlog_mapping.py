"""A backlog page of source rows masked and mapped into ingest CSV lines, the keys' lines
(external id, record key, cursor, digest of the values) and the rows' dead letters.

The first record's fields are the CSV's columns: a record with other fields is
dead-lettered (MAPPING_FAILED), as is one whose value is the text Bulk API 2.0 reads as
null (NULL_MARKER_TEXT). A field the record lacks is empty in the CSV (left as it is in
Salesforce); None and "" clear the field, as a page does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from shared.salesforce import NULL_MARKER
from shared.salesforce.bulk_csv import format_value
from shared.sync.backlog import backlog_sink_spec, line_digest
from shared.sync.job import SyncJob
from shared.sync.state import DeadLetter
from shared.sync.state.dead_letters import jsonable_record

_ABSENT = object()  # a field the record does not have: its CSV value is empty (unchanged)

# Bulk API 2.0 reads the text #N/A as null and has no way to escape it (as a bulk load
# refuses it, request.py): sent, the field would be cleared and the row counted delivered.
NULL_MARKER_TEXT = ("NULL_MARKER_TEXT",
                    f"a value is the text {NULL_MARKER}, which Bulk API 2.0 reads as null: "
                    "the record cannot be loaded in backlog mode as it is")


@dataclass
class StagedPage:
    """A page of source rows as the part's CSV lines, keys.csv's lines and dead letters."""

    rows: int
    last: dict[str, Any]
    columns: list[str]
    lines: list[list[str]] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


class PageMapping:
    """Masks and maps pages of rows into CSV lines; the first record's fields are the
    CSV's columns, and a record with other fields is dead-lettered."""

    def __init__(self, job: SyncJob) -> None:
        self.job = job
        self.columns: list[str] | None = None
        self.known: set[str] = set()
        self.external_at: int | None = None  # the external id's column

    def page(self, names: tuple[str, ...], found: list[Sequence[Any]]) -> StagedPage:
        job, codec = self.job, self.job.source.codec
        keyset = job.source.keyset()
        cursor_at = names.index(keyset.cursor_column)
        keys_at = [names.index(column) for column in job.source.key_columns]
        external_id = backlog_sink_spec(job).external_id_field
        page = StagedPage(len(found), dict(zip(names, found[-1], strict=True)), [])
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
                                               jsonable_record(masked)))
                continue
            values = list(map(record.get, self.columns, repeat(_ABSENT)))
            if NULL_MARKER in values:
                page.letters.append(DeadLetter(record_key, cursor, *NULL_MARKER_TEXT,
                                               jsonable_record(masked)))
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
            page.keys.append([identifier, record_key, cursor or "", line_digest(line)])
        page.columns = self.columns or []
        return page
