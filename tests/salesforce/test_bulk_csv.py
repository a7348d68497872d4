"""CSV for ingest jobs: exact round trips, #N/A only when clearing, streamed splitting."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import pytest

from shared.salesforce.bulk_csv import (
    read_ingest_csv,
    split_ingest_csv,
    stream_of_chunks,
    write_ingest_csv,
)

TRICKY = [
    {"Id": "1", "Name": 'Comma, "quoted" and\nnew line', "City": "Zürich ☕"},
    {"Id": "2", "Name": "tab\there|pipe;semi^caret`back", "City": None},
    {"Id": "3", "Name": "\r\ncarriage", "City": ""},
    {"Id": "4", "Name": "lone\rreturn and lone\nfeed", "City": " spaces "},
]


@pytest.mark.parametrize("line_ending", ["LF", "CRLF"])
@pytest.mark.parametrize("delimiter", ["COMMA", "TAB", "PIPE", "SEMICOLON", "CARET", "BACKQUOTE"])
def test_values_round_trip_exactly(line_ending: str, delimiter: str) -> None:
    out = io.BytesIO()
    written = write_ingest_csv(TRICKY, ["Id", "Name", "City"], out, line_ending, delimiter)
    out.seek(0)
    rows = list(read_ingest_csv(out, delimiter))
    assert written == 4
    assert [r["Name"] for r in rows] == [r["Name"] for r in TRICKY]
    assert [r["City"] for r in rows] == ["Zürich ☕", "", "", " spaces "]
    first_line = out.getvalue().split(b"\n", 1)[0] + b"\n"
    assert first_line.endswith(b"\r\n" if line_ending == "CRLF" else b"y\n")


def test_none_becomes_na_only_when_clearing() -> None:
    kept, cleared = io.BytesIO(), io.BytesIO()
    write_ingest_csv([{"A": None, "B": "x"}], ["A", "B"], kept)
    write_ingest_csv([{"A": None, "B": "x"}], ["A", "B"], cleared, clear_nulls=True)
    assert kept.getvalue() == b"A,B\n,x\n"
    assert cleared.getvalue() == b"A,B\n#N/A,x\n"


def test_python_values_are_written_as_salesforce_reads_them() -> None:
    out = io.BytesIO()
    row = {
        "d": dt.date(2024, 2, 29),
        "t": dt.datetime(2024, 2, 29, 13, 5, 7, 120000),
        "n": decimal.Decimal("1E+3"),
        "b": True,
        "i": 7,
    }
    write_ingest_csv([row], list(row), out)
    assert out.getvalue().decode().splitlines()[1] == (
        "2024-02-29,2024-02-29T13:05:07.120Z,1000,true,7"
    )


def test_writing_leaves_the_callers_stream_open() -> None:
    out = io.BytesIO()
    write_ingest_csv([{"A": 1}], ["A"], out)
    out.write(b"more")
    assert out.getvalue() == b"A\n1\nmore"


def test_unknown_delimiter_is_refused() -> None:
    with pytest.raises(ValueError, match="column_delimiter"):
        write_ingest_csv([], ["A"], io.BytesIO(), column_delimiter="SPACE")


def _csv(rows: int) -> bytes:
    out = io.BytesIO()
    write_ingest_csv(
        ({"Id": str(i), "Note": f"line one\nline two, {i} \"q\""} for i in range(rows)),
        ["Id", "Note"],
        out,
    )
    return out.getvalue()


def test_split_keeps_every_record_whole_and_each_part_under_the_limit() -> None:
    data = _csv(200)
    limit = 700
    parts = []
    for part, stream in split_ingest_csv(io.BytesIO(data), max_part_bytes=limit):
        content = stream.read()
        assert len(content) == part.size_bytes <= limit
        assert content.startswith(b"Id,Note\n")
        parts.append((part, content))
    assert len(parts) > 5
    assert [p.index for p, _ in parts] == list(range(len(parts)))
    ids = [row["Id"] for _, content in parts for row in read_ingest_csv(io.BytesIO(content))]
    assert ids == [str(i) for i in range(200)]
    assert sum(p.records for p, _ in parts) == 200
    # The parts are the original bytes: header plus records, nothing re-quoted.
    body = b"".join(content[len(b"Id,Note\n") :] for _, content in parts)
    assert b"Id,Note\n" + body == data


def test_a_load_below_the_limit_is_one_part() -> None:
    data = _csv(10)
    parts = [(p, s.read()) for p, s in split_ingest_csv(io.BytesIO(data), max_part_bytes=10_000)]
    assert len(parts) == 1
    assert parts[0][1] == data


def test_a_record_larger_than_the_limit_is_refused() -> None:
    data = b"Id,Note\n1," + b"x" * 500 + b"\n"
    with pytest.raises(ValueError, match="does not fit"):
        list(split_ingest_csv(io.BytesIO(data), max_part_bytes=100))


def test_an_empty_stream_has_no_header() -> None:
    with pytest.raises(ValueError, match="no header"):
        list(split_ingest_csv(io.BytesIO(b"")))


def test_a_stream_of_chunks_reads_like_the_whole_body() -> None:
    out = io.BytesIO()
    write_ingest_csv(TRICKY, ["Id", "Name", "City"], out)
    body = out.getvalue()
    # Chunks split inside a multi-byte character and inside a quoted newline, some empty.
    chunks = [body[i : i + 3] for i in range(0, len(body), 3)]
    chunks[1:1] = [b"", b""]

    rows = list(read_ingest_csv(stream_of_chunks(iter(chunks), buffer_size=4)))

    assert rows == list(read_ingest_csv(io.BytesIO(body)))
    assert [r["Name"] for r in rows] == [r["Name"] for r in TRICKY]
    assert stream_of_chunks([]).read() == b""
