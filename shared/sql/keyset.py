"""Keyset page queries on `(cursor, key)`, per dialect, and the run's fixed upper bound.

A page is the next `page_size` rows after a position `(cursor value, key values)`, in
`(cursor, key)` order, never beyond the upper bound fixed when the run started:

    cursor >= ? AND (cursor > ? OR key > ?) AND cursor <= ?        -- one key column
        AND key IS NOT NULL
    ORDER BY cursor, key

The leading `cursor >= ?` gives the planner a range to seek on an index over
`(cursor, key)`; the plain `cursor > ? OR (cursor = ? AND key > ?)` form is as slow as
OFFSET in the middle of a table (REFERENCE.md). Rows that share a cursor value across a
page boundary are told apart by the key, so none is lost or read twice.

A row whose key (any key column) or cursor is NULL is never in a page: it has no position
a watermark could hold, and SQL Server and SQLite sort NULL first where PostgreSQL sorts
it last, so `ORDER BY` and the predicate would disagree about where it lies (read twice,
or skipped). A NULL cursor fails every comparison already; NULL keys are left out by
`key IS NOT NULL`. `null_key_statement` and `null_cursor_statement` find those rows, so
that a run reports them (shared/sync/null_rows.py) instead of sending them as records.

Cursor kinds:
- `timestamp`: a change timestamp; the bound is the database's clock minus a lag, so that
  rows of transactions still open at the start (and committed with an older stamp) are read
  by the next run instead of being skipped.
- `rowversion`: SQL Server `rowversion`; the bound is `MIN_ACTIVE_ROWVERSION()`
  (exclusive), below which no open transaction can still commit a row.
- `xid`: PostgreSQL's counterpart of `rowversion`: a bigint column that holds the writing
  transaction's id (`DEFAULT pg_current_xact_id()::text::bigint`, and the same in an
  update trigger); the bound is `pg_snapshot_xmin(pg_current_snapshot())` (exclusive), the
  oldest transaction id still running, below which every writer has ended.
- `version`: a monotonic bigint version column; the bound is `MAX(column)` when the run
  starts (inclusive). Safe only where versions become visible in the order they are
  handed out: SQLite (one writer at a time, the version assigned inside the write
  transaction) or a single writing process. With concurrent writers taking numbers from a
  sequence (PostgreSQL, SQL Server), a transaction that took version 10 and commits after
  one that took 11 is skipped once the watermark passed 11: use `xid` on PostgreSQL and
  `rowversion` on SQL Server, or a `timestamp` cursor with a lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.sql.dialects import Dialect
from shared.sql.identifiers import validate_identifier

CURSOR_KINDS = ("timestamp", "rowversion", "xid", "version")


@dataclass(frozen=True)
class KeysetSource:
    """What to read: a view or table, its cursor and key columns, the columns to select."""

    dialect: Dialect
    relation: str
    cursor_column: str
    cursor_kind: str
    key_columns: tuple[str, ...]
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.cursor_kind not in CURSOR_KINDS:
            raise ValueError(
                f"cursor kind {self.cursor_kind!r} is not one of {', '.join(CURSOR_KINDS)}"
            )
        if self.cursor_kind == "rowversion" and self.dialect.name != "tsql":
            raise ValueError("a rowversion cursor exists only on SQL Server (dialect tsql)")
        if self.cursor_kind == "xid" and self.dialect.name != "postgresql":
            raise ValueError("an xid cursor exists only on PostgreSQL (dialect postgresql)")
        if not self.key_columns:
            raise ValueError("at least one key column is needed to order rows within a cursor")
        self.dialect.quote_relation(self.relation)
        for column in (self.cursor_column, *self.key_columns, *self.columns):
            validate_identifier(column, "column")

    @property
    def selected_columns(self) -> tuple[str, ...]:
        """The configured columns plus cursor and key columns, each once, in order."""
        ordered = [*self.columns, self.cursor_column, *self.key_columns]
        return tuple(dict.fromkeys(ordered))


@dataclass(frozen=True)
class Position:
    """Where the last delivered row was: its cursor value and key values.

    `key` is None only for the initial watermark, which no row has been read at yet.
    """

    cursor: Any
    key: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class UpperBound:
    """The highest cursor value a run may read, fixed at its start. `value` None: no rows."""

    value: Any
    inclusive: bool


@dataclass(frozen=True)
class KeyPartition:
    """One of `count` parts of the rows, by their one integer key column: the rows whose
    key is `index` modulo `count` (negative keys too: `%` takes the sign of the key on
    SQL Server, PostgreSQL and SQLite, so the remainder is brought back into 0..count-1).
    Every key lies in exactly one part, so every change of one record is read, in order,
    by one part. A row with a NULL key lies in no part, as it lies in no page of a run in
    one piece (`page_statement`); the run reports it when it begins."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} is not one of 0..{self.count - 1}")

    def predicate(self, source: KeysetSource) -> str:
        if len(source.key_columns) != 1:
            raise ValueError("rows are partitioned by one integer key column only")
        key = source.dialect.quote(source.key_columns[0])
        # Literals, not parameters: two integers, and no driver has to guess their type.
        return f"(({key} % {self.count}) + {self.count}) % {self.count} = {self.index}"

    def holds(self, key: int | None) -> bool:
        """Whether a key lies in this part (as the predicate decides it in the database)."""
        return key is not None and key % self.count == self.index


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...]


def _select_list(source: KeysetSource) -> str:
    return ", ".join(source.dialect.quote(column) for column in source.selected_columns)


def _order_by(source: KeysetSource) -> str:
    quote = source.dialect.quote
    return ", ".join(quote(column) for column in (source.cursor_column, *source.key_columns))


def bind_cursor(source: KeysetSource, value: Any) -> Any:
    """A cursor value as the driver must receive it for comparisons to hold."""
    if source.cursor_kind == "timestamp":
        stamp = as_datetime(value)
        if source.dialect.timestamps_as_text:
            return format_sqlite_timestamp(stamp)
        return stamp
    if source.cursor_kind == "rowversion":
        return bytes(value)
    return int(value)


def page_statement(
    source: KeysetSource, after: Position, bound: UpperBound, page_size: int,
    partition: KeyPartition | None = None,
) -> Statement:
    """The next page after `after`, up to `bound`, at most `page_size` rows (of
    `partition` only, when given)."""
    if page_size <= 0:
        raise ValueError("page size must be above 0")
    quote = source.dialect.quote
    cursor = quote(source.cursor_column)
    cursor_value = bind_cursor(source, after.cursor)
    params: list[Any] = []
    if after.key is None:
        where = f"{cursor} > ?"
        params.append(cursor_value)
    else:
        if len(after.key) != len(source.key_columns):
            raise ValueError(
                f"position has {len(after.key)} key values, the source has "
                f"{len(source.key_columns)} key columns"
            )
        key_terms = []
        for depth, column in enumerate(source.key_columns):
            equal = [f"{quote(previous)} = ?" for previous in source.key_columns[:depth]]
            key_terms.append(" AND ".join([*equal, f"{quote(column)} > ?"]))
        key_predicate = " OR ".join(
            f"({term})" if " AND " in term else term for term in key_terms
        )
        where = f"{cursor} >= ? AND ({cursor} > ? OR {key_predicate})"
        params += [cursor_value, cursor_value]
        for depth in range(len(source.key_columns)):
            params += [*after.key[:depth], after.key[depth]]
    where += f" AND {cursor} {'<=' if bound.inclusive else '<'} ?"
    params.append(bind_cursor(source, bound.value))
    where += "".join(f" AND {quote(column)} IS NOT NULL" for column in source.key_columns)
    if partition is not None:
        where += f" AND {partition.predicate(source)}"
    return _limited_select(source, where, _order_by(source), params, page_size)


def null_key_statement(
    source: KeysetSource, after: Any, after_inclusive: bool, bound: UpperBound, limit: int
) -> Statement:
    """The rows a page never reads because a key column is NULL, whose cursor lies after
    `after` (`after_inclusive`: at it too) up to `bound`, in cursor order, at most `limit`:
    a range of the `(cursor, key)` index, as a page reads."""
    quote = source.dialect.quote
    cursor = quote(source.cursor_column)
    nulls = " OR ".join(f"{quote(column)} IS NULL" for column in source.key_columns)
    where = (f"{cursor} {'>=' if after_inclusive else '>'} ? "
             f"AND {cursor} {'<=' if bound.inclusive else '<'} ? AND ({nulls})")
    params = [bind_cursor(source, after), bind_cursor(source, bound.value)]
    return _limited_select(source, where, _order_by(source), params, limit)


def null_cursor_statement(source: KeysetSource, limit: int) -> Statement:
    """The rows no page ever reads because their cursor is NULL, in key order, at most
    `limit` (a seek on the `(cursor, key)` index: its NULL entries)."""
    quote = source.dialect.quote
    return _limited_select(source, f"{quote(source.cursor_column)} IS NULL",
                           ", ".join(quote(column) for column in source.key_columns), [], limit)


def _limited_select(source: KeysetSource, where: str, order_by: str, params: list[Any],
                    limit: int) -> Statement:
    """The source's columns of the rows matching `where` (its `params`), in `order_by`
    order, at most `limit`: the limit is bound first on SQL Server (`SELECT TOP (?)`),
    last elsewhere (`LIMIT ?`)."""
    sql = source.dialect.select_page(
        _select_list(source), source.dialect.quote_relation(source.relation), where, order_by)
    if source.dialect.name == "tsql":
        return Statement(sql, (limit, *params))
    return Statement(sql, (*params, limit))


def count_statement(
    source: KeysetSource, after: Position, bound: UpperBound, limit: int
) -> Statement:
    """How many rows lie after `after` up to `bound`, counted up to `limit` (an index
    range scan of at most `limit` rows, however many changes are waiting)."""
    page = page_statement(source, after, bound, limit)
    return Statement(f"SELECT COUNT(*) FROM ({page.sql}) changes", page.params)


def offset_page_statement(source: KeysetSource, offset: int, page_size: int) -> Statement:
    """OFFSET paging over the same order; only the benchmark uses it, as the baseline."""
    sql = source.dialect.select_offset_page(
        _select_list(source), source.dialect.quote_relation(source.relation), _order_by(source)
    )
    if source.dialect.name == "tsql":
        return Statement(sql, (offset, page_size))
    return Statement(sql, (page_size, offset))


def probe_statement(source: KeysetSource) -> Statement:
    """Reads no row; fails when the relation or one of its columns is missing."""
    return Statement(
        source.dialect.select_no_rows(
            _select_list(source), source.dialect.quote_relation(source.relation)
        ),
        (),
    )


def upper_bound_statement(source: KeysetSource) -> Statement:
    if source.cursor_kind == "timestamp":
        return Statement(f"SELECT {source.dialect.now_expression}", ())
    if source.cursor_kind == "rowversion":
        return Statement("SELECT MIN_ACTIVE_ROWVERSION()", ())
    if source.cursor_kind == "xid":
        # xid8 has no cast to bigint; its text form is the 64-bit (epoch-extended) number.
        return Statement(
            "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)", ()
        )
    return Statement(
        f"SELECT MAX({source.dialect.quote(source.cursor_column)}) "
        f"FROM {source.dialect.quote_relation(source.relation)}",
        (),
    )


def upper_bound_from(source: KeysetSource, value: Any, lag: timedelta) -> UpperBound:
    """The bound from the value `upper_bound_statement` returned."""
    if source.cursor_kind == "timestamp":
        return UpperBound(as_datetime(value) - lag, inclusive=True)
    if source.cursor_kind == "rowversion":
        return UpperBound(bytes(value), inclusive=False)
    if source.cursor_kind == "xid":
        return UpperBound(int(value), inclusive=False)
    return UpperBound(None if value is None else int(value), inclusive=True)


def position_of(source: KeysetSource, row: dict[str, Any]) -> Position:
    return Position(
        normalise_cursor(source, row[source.cursor_column]),
        tuple(normalise_key(row[column]) for column in source.key_columns),
    )


def normalise_cursor(source: KeysetSource, value: Any) -> Any:
    if source.cursor_kind == "timestamp":
        return as_datetime(value)
    if source.cursor_kind == "rowversion":
        return bytes(value)
    return int(value)


def normalise_key(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        # Pages leave out NULL keys (page_statement): a position is never taken at one.
        raise ValueError(f"a key column holds {value!r}: key columns must be non-null")
    if isinstance(value, int | str):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return str(value)


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise ValueError(f"expected a timestamp, got {value!r}")


def format_sqlite_timestamp(value: datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS.SSS`, what `strftime('%Y-%m-%d %H:%M:%f')` writes.

    SQLite compares these as text, so a bound value must have exactly the stored format;
    microseconds are kept only when they are not whole milliseconds.
    """
    text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if value.microsecond % 1000 == 0 else text
