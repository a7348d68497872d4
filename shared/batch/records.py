"""Input records of `POST /api/batch-jobs/{job}`: JSON array, NDJSON or CSV, all checked.

Every record must be a JSON object (CSV rows are objects by their header) whose text is
valid Unicode: invalid UTF-8 and lone surrogates (`"\\ud800"`) are refused, as they cannot
be stored or sent on, and so are NaN and infinite numbers (`NaN`, `-Infinity`, `1e999`).
`parse_records` returns the records, or an `InputRejected` that names each bad record by
its index, so the client can fix them all at once.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines", "application/jsonlines")
CSV_TYPES = ("text/csv", "application/csv")
SUPPORTED_TYPES = JSON_TYPES + NDJSON_TYPES + CSV_TYPES
MAX_LISTED_ERRORS = 100
MAX_DEPTH = 32


@dataclass(frozen=True)
class RecordError:
    index: int | None  # None: the body as a whole
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "message": self.message}


@dataclass(frozen=True)
class InputRejected:
    """Why the body cannot be loaded: a code clients branch on and the errors found."""

    code: str
    detail: str
    errors: list[RecordError] = field(default_factory=list)
    status: int = 400


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_records(body: bytes, content_type: str | None) -> list[dict[str, Any]] | InputRejected:
    kind = media_type(content_type)
    if kind not in SUPPORTED_TYPES:
        return InputRejected(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type {kind or '(none)'!r} is not accepted; send application/json (an "
            "array of objects), application/x-ndjson (one object per line) or text/csv "
            "(a header line, then one record per line)", status=415)
    try:
        text = body.decode("utf-8-sig" if kind in CSV_TYPES else "utf-8")
    except UnicodeDecodeError as error:
        return InputRejected("INVALID_ENCODING",
                             f"the body is not UTF-8: byte {error.start} is invalid")
    if not text.strip():
        # What curl sends for `--data @FILE` when FILE is missing: say so, not a parser's offset.
        return InputRejected("NO_RECORDS", "the body is empty: send the records")
    if kind in CSV_TYPES:
        parsed = _csv_records(text)
    elif kind in NDJSON_TYPES:
        parsed = _ndjson_records(text)
    else:
        parsed = _json_records(text)
    if isinstance(parsed, InputRejected):
        return parsed
    records, errors = parsed
    for index, record in enumerate(records):
        if record is None:
            continue
        problem = _record_problem(record)
        if problem:
            errors.append(RecordError(index, problem))
    if errors:
        errors.sort(key=lambda error: -1 if error.index is None else error.index)
        return InputRejected(
            "INVALID_RECORDS",
            f"{len(errors)} record(s) are invalid; nothing was loaded. Fix every listed "
            "record and post again."
            + (f" The first {MAX_LISTED_ERRORS} are listed." if len(errors) > MAX_LISTED_ERRORS
               else ""),
            errors[:MAX_LISTED_ERRORS])
    if not records:
        return InputRejected("NO_RECORDS", "the body holds no records")
    return records


def _json_records(text: str) -> tuple[list[Any], list[RecordError]] | InputRejected:
    try:
        parsed = json.loads(text)
    except ValueError as error:
        return InputRejected("MALFORMED_INPUT", f"the body is not JSON: {error}")
    except RecursionError:
        return InputRejected("MALFORMED_INPUT", "the body nests JSON too deeply")
    if not isinstance(parsed, list):
        return InputRejected("MALFORMED_INPUT", "the body must be a JSON array of records")
    return parsed, []


def _ndjson_records(text: str) -> tuple[list[Any], list[RecordError]]:
    records: list[Any] = []
    errors: list[RecordError] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError) as error:
            errors.append(RecordError(len(records), f"not a JSON object: {error}"[:300]))
            records.append(None)
    return records, errors


def _csv_records(text: str) -> tuple[list[Any], list[RecordError]] | InputRejected:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return InputRejected("NO_RECORDS", "the CSV body is empty; the first line must be "
                             "the header")
    except csv.Error as error:
        return InputRejected("MALFORMED_INPUT", f"the CSV header is malformed: {error}")
    names = [name.strip() for name in header]
    if any(not name for name in names) or len(set(names)) != len(names):
        return InputRejected("MALFORMED_INPUT", "every CSV header column needs a unique, "
                             f"non-empty name, got {names}")
    records: list[Any] = []
    errors: list[RecordError] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(RecordError(len(records), f"malformed CSV: {error}"))
            records.append(None)
            break
        if not row:
            continue
        if len(row) != len(names):
            errors.append(RecordError(len(records), f"has {len(row)} fields, the header "
                                      f"has {len(names)}"))
            records.append(None)
            continue
        records.append(dict(zip(names, row, strict=True)))
    return records, errors


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"must be a JSON object, got {type(record).__name__}"
    try:
        return _value_problem(record, 0)
    except RecursionError:
        return "nests too deeply"


def _value_problem(value: Any, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone surrogate (invalid Unicode text)"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        # Python's parser reads NaN and Infinity (and 1e999 as infinity); JSON has neither,
        # and the records would not reach a JSON target or the failures report as sent.
        return "holds NaN or an infinite number, which JSON cannot carry"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _value_problem(key, depth + 1) or _value_problem(item, depth + 1)
            if problem:
                return f"{key!r}: {problem}" if "lone surrogate" not in problem else problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = _value_problem(item, depth + 1)
            if problem:
                return problem
    return None
