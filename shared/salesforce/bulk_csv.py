"""CSV for Bulk API 2.0 ingest jobs: written and split as streams, never whole in memory.

Salesforce reads UTF-8 CSV with the job's `lineEnding` and `columnDelimiter`. Empty values
are ignored on update; `#N/A` clears a field, so `None` becomes `#N/A` only when the caller
asks for it (`clear_nulls`), otherwise an empty value.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import io
import itertools
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

NULL_MARKER = "#N/A"

# Salesforce accepts 150 MB of base64 per upload; base64 grows data by a third, so 100 MB
# of raw CSV is the documented safe size per job.
MAX_UPLOAD_BYTES = 100_000_000

LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
COLUMN_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}


def line_terminator(line_ending: str) -> str:
    try:
        return LINE_ENDINGS[line_ending]
    except KeyError:
        raise ValueError(
            f"line_ending must be one of {', '.join(LINE_ENDINGS)}, got {line_ending!r}"
        ) from None


def delimiter_char(column_delimiter: str) -> str:
    try:
        return COLUMN_DELIMITERS[column_delimiter]
    except KeyError:
        raise ValueError(
            f"column_delimiter must be one of {', '.join(COLUMN_DELIMITERS)}, "
            f"got {column_delimiter!r}"
        ) from None


def format_value(value: Any, clear_nulls: bool = False) -> str:
    """The CSV text Salesforce expects for a Python value."""
    if value is None:
        return NULL_MARKER if clear_nulls else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        # Naive datetimes from SQL Server are taken as UTC: Salesforce needs an offset.
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        raise TypeError("binary values cannot be loaded through Bulk API 2.0 CSV")
    return str(value)


def write_ingest_csv(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    out: IO[bytes],
    line_ending: str = "LF",
    column_delimiter: str = "COMMA",
    clear_nulls: bool = False,
) -> int:
    """Write a header and one line per row to `out` as UTF-8; returns the rows written.

    A column missing from a row is written empty (left unchanged by Salesforce). With
    `clear_nulls`, `None` is written `#N/A`, which clears the field.
    """
    # Most values are text already: format_value only for the others.
    lines = ([value if value.__class__ is str else format_value(value, clear_nulls)
              for value in map(row.get, columns)] for row in rows)
    return write_ingest_csv_lines(lines, columns, out, line_ending, column_delimiter)


def write_ingest_csv_lines(
    lines: Iterable[Sequence[str]],
    columns: Sequence[str],
    out: IO[bytes],
    line_ending: str = "LF",
    column_delimiter: str = "COMMA",
) -> int:
    """`write_ingest_csv` for rows already formatted: each the text of every column, in
    order. Returns the rows written."""
    if not columns:
        raise ValueError("an ingest CSV needs at least one column")
    lines = iter(lines)
    out.write(ingest_csv_bytes([list(columns)], line_ending, column_delimiter))
    count = 0
    while chunk := list(itertools.islice(lines, CSV_CHUNK_ROWS)):
        out.write(ingest_csv_bytes(chunk, line_ending, column_delimiter))
        count += len(chunk)
    return count


# Rows formatted per call of the csv module: its C loop over many rows costs a fraction
# of a Python call per row, and a chunk of rows is encoded and written at once.
CSV_CHUNK_ROWS = 1000


def ingest_csv_bytes(lines: Sequence[Sequence[str]], line_ending: str = "LF",
                     column_delimiter: str = "COMMA") -> bytes:
    """Formatted rows (the text of every column, in order) as ingest CSV lines, UTF-8."""
    terminator = line_terminator(line_ending)
    delimiter = delimiter_char(column_delimiter)
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator=terminator).writerows(lines)
    written = text.getvalue()
    # The csv module quotes a value only for the characters of its own line terminator,
    # so with LF a value holding a lone CR would go out unquoted and split the record.
    # Such rows are written with CRLF, which quotes it, and get the LF ending back.
    if terminator == "\n" and "\r" in written:
        text = io.StringIO()
        writer = csv.writer(text, delimiter=delimiter, lineterminator=terminator)
        line = io.StringIO()
        quoting_writer = csv.writer(line, delimiter=delimiter, lineterminator="\r\n")
        for values in lines:
            if "\r" in "".join(values):
                quoting_writer.writerow(values)
                text.write(line.getvalue()[:-2] + terminator)
                line.seek(0)
                line.truncate()
            else:
                writer.writerow(values)
        written = text.getvalue()
    return written.encode("utf-8")


def read_ingest_csv(
    stream: IO[bytes], column_delimiter: str = "COMMA"
) -> Iterator[dict[str, str]]:
    """Parse a UTF-8 CSV stream row by row into dicts keyed by the header.

    For an HTTP body pass `stream_of_chunks(response.iter_content(...))`, not the raw
    socket stream: that one closes itself at the end of a Content-Length body, and the
    text layer then fails on its next read.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from csv.DictReader(text, delimiter=delimiter_char(column_delimiter))
    finally:
        # Leave the caller's stream open; it may have been closed meanwhile.
        with contextlib.suppress(ValueError):
            text.detach()


def read_ingest_csv_rows(
    stream: BinaryIO, column_delimiter: str = "COMMA"
) -> Iterator[list[str]]:
    """Parse a UTF-8 CSV stream row by row into lists, the header first (see
    `read_ingest_csv`)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from csv.reader(text, delimiter=delimiter_char(column_delimiter))
    finally:
        with contextlib.suppress(ValueError):
            text.detach()


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterable of byte chunks; empty chunks are skipped."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def stream_of_chunks(chunks: Iterable[bytes], buffer_size: int = 64 * 1024) -> BinaryIO:
    """A buffered binary stream reading `chunks` in order (an HTTP body's decoded chunks):
    the same bytes whatever the body's framing (chunked, Content-Length) or encoding."""
    return io.BufferedReader(_ChunkReader(chunks), buffer_size)


@dataclass(frozen=True)
class CsvPart:
    """One part of a split load: its position, record count and size in bytes."""

    index: int
    records: int
    size_bytes: int


def _read_records(stream: IO[bytes]) -> Iterator[bytes]:
    """Raw CSV records, each with its line ending, exactly as they are in the stream.

    A newline ends a record only outside quotes; since quotes inside a quoted value are
    doubled, that is when the record so far holds an even number of quote characters.
    Neither `"` nor a newline byte can occur inside a multi-byte UTF-8 sequence.
    """
    pending: list[bytes] = []
    quotes = 0
    for line in iter(stream.readline, b""):
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending.clear()
            quotes = 0
    if pending:
        record = b"".join(pending)
        if record.strip():
            yield record


def split_ingest_csv(
    source: IO[bytes],
    max_part_bytes: int = MAX_UPLOAD_BYTES,
    spool_dir: str | None = None,
) -> Iterator[tuple[CsvPart, BinaryIO]]:
    """Split a CSV stream into parts of at most `max_part_bytes`, each starting with the header.

    Yields `(part, stream)`: the stream is a temporary file positioned at its start, valid
    until the next part is requested (upload it, or copy it to a blob, before moving on).
    Only one part is on disk at a time and only one record is in memory. Records are copied
    byte for byte, so quoting, line endings and delimiters are kept as they were.
    """
    header = source.readline()
    if not header.strip():
        raise ValueError("the CSV has no header line")
    if not header.endswith(b"\n"):
        header += b"\n"
    if len(header) >= max_part_bytes:
        raise ValueError(f"the CSV header alone is over the {max_part_bytes}-byte part limit")
    index = 0
    part: BinaryIO | None = None
    records = size = 0

    def finished_part() -> tuple[CsvPart, BinaryIO]:
        assert part is not None
        part.flush()
        part.seek(0)
        return CsvPart(index=index, records=records, size_bytes=size), part

    try:
        for record in _read_records(source):
            if len(header) + len(record) > max_part_bytes:
                raise ValueError(
                    f"record {records + 1} of part {index} is {len(record)} bytes: with the "
                    f"header it does not fit in a {max_part_bytes}-byte part"
                )
            if part is not None and size + len(record) > max_part_bytes:
                yield finished_part()
                part.close()
                part = None
                index += 1
            if part is None:
                part = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed below
                part.write(header)
                records, size = 0, len(header)
            part.write(record)
            records += 1
            size += len(record)
        if part is not None:
            yield finished_part()
    finally:
        if part is not None:
            part.close()
