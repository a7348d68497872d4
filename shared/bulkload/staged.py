"""A load's records as staged before its orchestration starts, and a child level's records
prepared while its parent level's jobs run.

    levels/{i}/records.jsonl   {"columns": [...]} then one [external id, parent's external
                               id, fields] line per record, as validated: the text its
                               level's fingerprint reads (a level staged by an earlier
                               version has {"e", "p", "f"} lines)
    levels/{i}/prepared.csv    e, p, then the level's columns: the record's CSV values as
                               the ingest CSV holds them, all but the parent's Salesforce id
    body.json                  the body of a posted load as it came (with `body_digest` in
                               the load's input): only the first level's records.jsonl is
                               written before the load starts, each other level's is
                               encoded from the body when first read, and kept

A child level can only be staged once its parent level's results are read (the parent's
Salesforce ids, which parents failed); its records can be decoded and formatted before,
while Salesforce runs the parent's jobs: staging it then only looks each parent up.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.bulkload.fingerprint import (
    LevelFingerprint,
    level_digest,
    record_text,
    request_fingerprint,
)
from shared.bulkload.request import LoadLevel, LoadRecord, LoadRequest
from shared.bulkload.seed_shape import validated_seed_records
from shared.bulkload.store import LoadStore, spooled_file
from shared.bulkload.validation import no_lone_surrogates, validate_load_request
from shared.cyclic_gc import collection_paused
from shared.salesforce import NULL_MARKER
from shared.salesforce.bulk_csv import format_value

RECORDS_FILE = "records.jsonl"
BODY_FILE = "body.json"
_ABSENT = object()  # a field a record does not mention
PREPARED_FILE = "prepared.csv"
REQUEST_FILE = "request.json"
# The first line of a level's records.jsonl: {"columns": [the fields of its records]}.
COLUMNS_KEY = "columns"

# One encoder and decoder for every staged line: json.dumps/loads would build one per line.
_encode_line = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_decode_line = json.JSONDecoder().decode
# Records encoded and written at a time: one digest update and one write each.
_CHUNK_RECORDS = 5_000

StagedRecord = tuple[str | None, str | None, dict[str, Any]]
# A record as staging writes it: external id, parent's external id, each column's CSV text.
CsvRecord = tuple[str | None, str | None, list[str]]


@dataclass
class EncodedLevel:
    """A level's records.jsonl, written to a temporary file, and its fingerprint: both from
    one encoding of each record."""

    file: IO[bytes]
    fingerprint: LevelFingerprint


@dataclass
class EncodedRequest:
    levels: list[EncodedLevel]

    @property
    def fingerprint(self) -> tuple[LevelFingerprint, ...]:
        return tuple(level.fingerprint for level in self.levels)

    @property
    def counts(self) -> list[int]:
        return [level.fingerprint.records for level in self.levels]

    def close(self) -> None:
        for level in self.levels:
            level.file.close()


def encode_request(request: LoadRequest) -> EncodedRequest:
    """Each level's records file and fingerprint, before anything is claimed or staged."""
    encoded = EncodedRequest([])
    try:
        for level, records in zip(request.levels, request.records, strict=True):
            encoded.levels.append(encode_level(level, records))
    except BaseException:
        encoded.close()
        raise
    return encoded


def encode_level(level: LoadLevel, records: Sequence[LoadRecord]) -> EncodedLevel:
    out = spooled_file()
    try:
        # The columns first: a level is then staged in one pass over its records.
        columns = data_columns(record.fields for record in records)
        out.write(_encode_line({COLUMNS_KEY: columns}).encode() + b"\n")
        digest = level_digest(level)
        for start in range(0, len(records), _CHUNK_RECORDS):
            chunk = "".join([record_text(record.external_id, record.parent_external_id,
                                         record.fields) + "\n"
                             for record in records[start:start + _CHUNK_RECORDS]]).encode()
            digest.update(chunk)
            out.write(chunk)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return EncodedLevel(out, LevelFingerprint(level.name, level.object, level.operation,
                                              len(records), digest.hexdigest()))


def stage_encoded(store: LoadStore, levels: Sequence[LoadLevel],
                  encoded: EncodedRequest) -> None:
    """Write each level's records file and the levels."""
    store.ensure_container()
    for index, level in enumerate(encoded.levels):
        level.file.seek(0)
        store.upload_file(store.level_blob(index, RECORDS_FILE), level.file,
                          "application/jsonl")
    store.upload_bytes(
        store.name(REQUEST_FILE),
        json.dumps({"levels": [level.to_json() for level in levels]}).encode(),
        "application/json",
    )


def stage_posted(store: LoadStore, levels: Sequence[LoadLevel], body: bytes,
                 first_level: EncodedLevel) -> None:
    """Write the body as posted, the first level's records file and the levels into the
    container the load id's claim was made in. The other levels are prepared from the body
    while the first level's jobs run; their records files are encoded from it if read."""
    with ThreadPoolExecutor(1, thread_name_prefix="bulkload-body") as pool:
        kept = pool.submit(store.upload_bytes, store.name(BODY_FILE), body, "application/json")
        first_level.file.seek(0)
        store.upload_file(store.level_blob(0, RECORDS_FILE), first_level.file,
                          "application/jsonl")
        kept.result()
    store.upload_bytes(
        store.name(REQUEST_FILE),
        json.dumps({"levels": [level.to_json() for level in levels]}).encode(),
        "application/json",
    )


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def posted_request(store: LoadStore) -> LoadRequest:
    """The request a load's kept body was validated into at its POST."""
    body = store.read_bytes(store.name(BODY_FILE))
    return validate_load_request(json.loads(body), text_checked=no_lone_surrogates(body))


def posted_fingerprint(store: LoadStore) -> tuple[LevelFingerprint, ...]:
    return request_fingerprint(posted_request(store))


@contextlib.contextmanager
def records_file(store: LoadStore, level_index: int) -> Iterator[IO[bytes]]:
    """The level's records.jsonl; for a load whose body was kept, encoded from the body
    and written the first time it is read (the same bytes each time: safe to race)."""
    with store.download_if_exists(store.level_blob(level_index, RECORDS_FILE)) as local:
        if local is not None:
            yield local
            return
    try:
        request = posted_request(store)
    except ResourceNotFoundError:
        raise KeyError(store.level_blob(level_index, RECORDS_FILE)) from None
    encoded = encode_level(request.levels[level_index], request.records[level_index])
    with encoded.file as local:
        store.upload_file(store.level_blob(level_index, RECORDS_FILE), local,
                          "application/jsonl")
        local.seek(0)
        yield local


def stage_request(store: LoadStore, request: LoadRequest) -> list[int]:
    """Encode and write each level's records and the levels; returns records per level."""
    encoded = encode_request(request)
    try:
        stage_encoded(store, request.levels, encoded)
    finally:
        encoded.close()
    return encoded.counts


def staged_records(local: IO[bytes]) -> Iterator[StagedRecord]:
    """(external id, parent's external id, fields) of each staged record."""
    local.seek(0)
    for line in local:
        if line.strip():
            record = _decode_line(line.decode("utf-8"))
            if record.__class__ is list:
                yield record[0], record[1], record[2]
            elif COLUMNS_KEY not in record:  # a line staged by an earlier version
                yield record["e"], record["p"], record["f"]


def staged_columns(local: IO[bytes]) -> list[str]:
    """The level's columns, from the line before its records; read from the records for a
    level staged without that line (by an earlier version of the app)."""
    local.seek(0)
    first = local.readline()
    header = _decode_line(first.decode("utf-8")) if first.strip() else {}
    if COLUMNS_KEY in header:
        return list(header[COLUMNS_KEY])
    return data_columns(fields for _, _, fields in staged_records(local))


def data_columns(records_fields: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every field name of the records, in the order they first appear."""
    columns: dict[str, None] = {}
    for fields in records_fields:
        columns.update(dict.fromkeys(fields))
    return list(columns)


def csv_values(fields: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    # JSON null and empty text clear the field (#N/A: Salesforce keeps no empty text, and
    # an empty CSV value leaves the field as it was); a field the record does not mention
    # stays as is.
    return {column: "" if (value := fields.get(column, _ABSENT)) is _ABSENT
            else NULL_MARKER if value is None or value == "" else value
            for column in columns}


def csv_texts(fields: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """The ingest CSV's text of each column, in order (`csv_values`, formatted)."""
    return [value if value.__class__ is str else format_value(value)
            for value in csv_values(fields, columns).values()]


# -- a child level prepared while its parent's jobs run ------------------------------------


def prepare_level(store: LoadStore, level_index: int, digest: str | None = None) -> None:
    """Write the level's records as CSV rows of their ingest values (safe to repeat: the
    file is written whole, or not at all). `digest` is the body's SHA-256 taken at the POST
    that validated it (`body_digest` in the load's input): a kept body that still has it is
    not validated again."""
    with _staged_level(store, level_index, digest) as (columns, records), \
            spooled_file() as out:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="")
        # CRLF: the csv module quotes only for its own terminator's characters, and a value
        # holding a lone CR must come back as one value.
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["e", "p", *columns])
        for external_id, parent_external_id, fields in records:
            writer.writerow([external_id or "", parent_external_id or "",
                             *csv_texts(fields, columns)])
        text.flush()
        text.detach()
        out.seek(0)
        store.upload_file(store.level_blob(level_index, PREPARED_FILE), out)


@contextlib.contextmanager
def _staged_level(store: LoadStore, level_index: int, digest: str | None = None
                  ) -> Iterator[tuple[list[str], Iterable[StagedRecord]]]:
    """The level's columns and records: from its records file, or straight from the kept
    body when it has none yet (its records file is then not needed to prepare it)."""
    with store.download_if_exists(store.level_blob(level_index, RECORDS_FILE)) as local:
        if local is not None:
            yield staged_columns(local), staged_records(local)
            return
    try:
        body = store.read_bytes(store.name(BODY_FILE))
    except ResourceNotFoundError:
        raise KeyError(store.level_blob(level_index, RECORDS_FILE)) from None
    yield _posted_level(body, level_index, digest)


def _posted_level(body: bytes, level_index: int, digest: str | None
                  ) -> tuple[list[str], list[StagedRecord]]:
    """The level's columns and records from the kept body. The POST validated the body
    whose SHA-256 is `digest`: bytes with that digest are read without checking them
    again; any other bytes (or a body of the general shape) are validated as at a POST."""
    with collection_paused():
        return _parsed_level(body, level_index, digest)


def _parsed_level(body: bytes, level_index: int, digest: str | None
                  ) -> tuple[list[str], list[StagedRecord]]:
    if digest is not None and body_digest(body) == digest:
        parsed = json.loads(body)
        if "accounts" in parsed:
            records = list(validated_seed_records(parsed["accounts"], level_index))
            return data_columns(fields for _, _, fields in records), records
    request = validate_load_request(json.loads(body), text_checked=no_lone_surrogates(body))
    return data_columns(record.fields for record in request.records[level_index]), [
        (record.external_id, record.parent_external_id, record.fields)
        for record in request.records[level_index]]


@contextlib.contextmanager
def level_records(store: LoadStore, level_index: int, prepared: bool
                  ) -> Iterator[tuple[list[str], Iterator[CsvRecord]]]:
    """The level's columns and its records as (external id, parent's external id, the CSV
    text of each column in order): with `prepared`, from its prepared file where there is
    one."""
    with contextlib.ExitStack() as files:
        local = files.enter_context(store.download_if_exists(
            store.level_blob(level_index, PREPARED_FILE))) if prepared else None
        if local is not None:
            text = io.TextIOWrapper(local, encoding="utf-8", newline="")
            files.callback(text.detach)
            rows = csv.reader(text)
            columns = next(rows, ["e", "p"])[2:]
            yield columns, ((row[0] or None, row[1] or None, row[2:]) for row in rows)
            return
        local = files.enter_context(records_file(store, level_index))
        columns = staged_columns(local)
        yield columns, ((external_id, parent_external_id, csv_texts(fields, columns))
                        for external_id, parent_external_id, fields in staged_records(local))
