"""A batch job's SQL source: the records of an instance read from a view, never from SQL
text that a caller sends.

    BatchJob(..., source=BatchSource(
        relation="dbo.Contacts_V", columns=("Contact_ID", "Email", "Region"),
        order_by=("Contact_ID",), connection_setting="CONTACTS_SOURCE_CONNECTION",
        filters=(SourceFilter("Region", "region"),
                 SourceFilter("Changed_At", "since", ">=", kind="timestamp",
                              required=False))))

    POST /api/batch-jobs/{job}  {"source": {"params": {"region": "EMEA"}}}

The relation, columns and filters are declared in code: identifiers are validated and
quoted per dialect (shared/sql), parameter values are bound, never written into SQL. The
connection string is the value of the app setting the source names (a Key Vault reference
in Azure), read and checked at start-up. Rows are read `block_size` at a time, in
`order_by` order, and staged as they come (shared/batch/loading.py `stage_blocks`): at most
one block is in memory. On PostgreSQL, psqlODBC would buffer the whole result before the
first fetch: the connection string gets `UseDeclareFetch=1` unless it sets it.

Column values become JSON: text, numbers and booleans as they are, DECIMAL/NUMERIC as
text (exact), dates and timestamps as ISO 8601 text; a binary column is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from shared.sql.dialects import Dialect, dialect_for_connection_string, dialect_named
from shared.sql.identifiers import split_qualified_name, validate_identifier
from shared.sql.keyset import Statement, format_sqlite_timestamp
from shared.sql.source import SourceError, SqlSource

OPERATORS = ("=", "<>", "<", "<=", ">", ">=")
KINDS = ("text", "integer", "number", "date", "timestamp")
MAX_TEXT = 4000
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DECLARE_FETCH = re.compile(r"(?:^|;)\s*usedeclarefetch\s*=", re.IGNORECASE)


@dataclass(frozen=True)
class SourceFilter:
    """`column operator ?`, bound to the request's parameter `param` (of `kind`); an
    optional filter whose parameter is not sent is left out."""

    column: str
    param: str
    operator: str = "="
    kind: str = "text"
    required: bool = True

    def __post_init__(self) -> None:
        validate_identifier(self.column, "filter column")
        if not _PARAM.fullmatch(self.param):
            raise ValueError(f"filter parameter {self.param!r} must be letters, digits and _, "
                             "starting with a letter, at most 40 characters")
        if self.operator not in OPERATORS:
            raise ValueError(f"filter operator {self.operator!r} is not one of {OPERATORS}")
        if self.kind not in KINDS:
            raise ValueError(f"filter kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class BatchSource:
    """A view or table an instance's records are read from, and how to filter it."""

    relation: str
    columns: tuple[str, ...]
    order_by: tuple[str, ...]
    connection_setting: str
    filters: tuple[SourceFilter, ...] = ()
    dialect: str | None = None  # None: from the connection string's ODBC driver
    login_timeout: int = 15
    query_timeout: int = 120
    # Filled at start-up from `connection_setting` (shared/batch/settings.py).
    connection_string: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "order_by", tuple(self.order_by))
        object.__setattr__(self, "filters", tuple(self.filters))
        if self.dialect:
            dialect_named(self.dialect)
        for column in (*self.columns, *self.order_by):
            validate_identifier(column, "source column")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"a source needs unique columns, got {self.columns}")
        if not self.order_by:
            raise ValueError("a source needs order_by columns (a key): records are numbered "
                             "in that order")
        params = [item.param for item in self.filters]
        if len(set(params)) != len(params):
            raise ValueError(f"filter parameters must be unique, got {params}")
        if not _SETTING.fullmatch(self.connection_setting):
            raise ValueError(f"connection_setting {self.connection_setting!r} is not an app "
                             "setting name")
        split_qualified_name(self.relation)

    def sql_dialect(self) -> Dialect:
        if self.dialect:
            return dialect_named(self.dialect)
        return dialect_for_connection_string(self.connection_string)


class InvalidParams(ValueError):
    """The request's source parameters do not fit the job's filters; `problems` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def bound_params(source: BatchSource, sent: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as the filters need them; InvalidParams names every one that is
    unknown, missing, or of the wrong kind."""
    problems = [f"parameter {name!r} is not one of the job's: "
                f"{sorted(item.param for item in source.filters) or 'none'}"
                for name in sent if name not in {item.param for item in source.filters}]
    values: dict[str, Any] = {}
    for item in source.filters:
        if sent.get(item.param) is None:
            if item.required:
                problems.append(f"parameter {item.param!r} ({item.kind}) is required")
            continue
        try:
            values[item.param] = _parsed(item.kind, sent[item.param])
        except ValueError as error:
            problems.append(f"parameter {item.param!r}: {error}")
    if problems:
        raise InvalidParams(problems)
    return values


def _parsed(kind: str, value: Any) -> Any:
    # What JSON parses but the ODBC driver cannot bind as given (a lone surrogate, a NUL,
    # an integer past 64 bits, NaN or infinity) is refused here, not left to fail (or
    # silently change) the query.
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError(f"expected text of at most {MAX_TEXT} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("holds a lone surrogate (invalid Unicode text)") from None
        if "\x00" in value:
            # SQLite's and PostgreSQL's ODBC drivers bind the text up to it: 'a\0b' would
            # select the rows of 'a'.
            raise ValueError("holds a NUL character (U+0000), which the database driver "
                             "cuts the text at")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if not _BIGINT_MIN <= value <= _BIGINT_MAX:
            raise ValueError("expected an integer from -2**63 to 2**63-1")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        if isinstance(value, int) and not _BIGINT_MIN <= value <= _BIGINT_MAX:
            try:
                value = float(value)
            except OverflowError:
                raise ValueError("expected a finite number") from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 {kind} as text")
    try:
        return date.fromisoformat(value) if kind == "date" else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 {kind}, got {value[:40]!r}") from None


def select_statement(source: BatchSource, values: Mapping[str, Any]) -> Statement:
    dialect = source.sql_dialect()
    conditions, params = [], []
    for item in source.filters:
        if item.param in values:
            conditions.append(f"{dialect.quote(item.column)} {item.operator} ?")
            params.append(_bound(dialect, values[item.param]))
    sql = (f"SELECT {', '.join(dialect.quote(column) for column in source.columns)} "
           f"FROM {dialect.quote_relation(source.relation)}")
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY " + ", ".join(dialect.quote(column) for column in source.order_by)
    return Statement(sql, tuple(params))


def _bound(dialect: Dialect, value: Any) -> Any:
    if dialect.timestamps_as_text and isinstance(value, datetime):
        return format_sqlite_timestamp(value)
    if dialect.timestamps_as_text and isinstance(value, date):
        return value.isoformat()
    return value


def streaming_connection_string(source: BatchSource) -> str:
    text = source.connection_string
    if source.sql_dialect().name == "postgresql" and not _DECLARE_FETCH.search(text):
        return text.rstrip(";") + ";UseDeclareFetch=1"
    return text


def read_source_blocks(source: BatchSource, values: Mapping[str, Any],
                       block_size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows the filters select, `block_size` at a time, as records; SourceError when
    the database fails or a value cannot be a record's."""
    sql = SqlSource(streaming_connection_string(source), source.relation,
                    login_timeout=source.login_timeout, query_timeout=source.query_timeout)
    for rows in sql.stream_rows(select_statement(source, values), block_size):
        yield [{name: _json_value(name, value) for name, value in row.items()} for row in rows]


def _json_value(column: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raise SourceError("SOURCE_UNSUPPORTED_VALUE",
                          f"column {column!r} holds binary data, which a record cannot carry: "
                          "leave it out of the source's columns")
    return value


def is_source_request(body: bytes, media_type: str) -> bool:
    """A JSON object body (records come as an array): `{"source": {"params": {...}}}`."""
    return media_type == "application/json" and body.lstrip()[:1] == b"{"


def source_request_params(body: bytes) -> dict[str, Any]:
    """The `params` of a source request; ValueError saying what is malformed."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError('the body is not JSON: send {"source": {"params": {...}}}') from None
    if not isinstance(parsed, dict) or set(parsed) != {"source"} \
            or not isinstance(parsed["source"], dict) or set(parsed["source"]) - {"params"}:
        raise ValueError('a JSON object body must be {"source": {"params": {...}}}; '
                         "records are posted as a JSON array")
    params = parsed["source"].get("params", {})
    if not isinstance(params, dict):
        raise ValueError('"params" must be an object of parameter names and values')
    return params


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """What a source request asked for: a re-post of the same parameters under its id is
    told from another."""
    return hashlib.sha256(b"source\n" + json.dumps(params, sort_keys=True).encode()).hexdigest()
