"""Generated SQL: identifiers validated and quoted, parameters only, T-SQL parses."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlglot
from sqlglot import exp

from shared.sql.dialects import (
    POSTGRESQL,
    SQLITE,
    TSQL,
    dialect_for_connection_string,
)
from shared.sql.identifiers import InvalidIdentifier
from shared.sql.keyset import (
    KeyPartition,
    KeysetSource,
    Position,
    UpperBound,
    count_statement,
    null_cursor_statement,
    null_key_statement,
    offset_page_statement,
    page_statement,
    probe_statement,
    upper_bound_statement,
)

SQLGLOT_DIALECT = {"tsql": "tsql", "postgresql": "postgres", "sqlite": "sqlite"}


def source(dialect=TSQL, kind="timestamp", keys=("Asset_ID",)) -> KeysetSource:
    return KeysetSource(
        dialect, "dbo.Usr_SW_Salesforce_Assets_Changes_V", "ChangeTimestamp", kind, keys,
        ("Asset_ID", "Asset_Name", "ChangeTimestamp"),
    )


def cursor_value(kind):
    return {"timestamp": datetime(2025, 10, 8), "rowversion": b"\x00" * 7 + b"\x10",
            "version": 42, "xid": 725}[kind]


def all_statements(dialect, kind, keys):
    src = source(dialect, kind, keys)
    bound = UpperBound(cursor_value(kind), inclusive=kind not in ("rowversion", "xid"))
    key_values = tuple(range(1, len(keys) + 1))
    return [
        page_statement(src, Position(cursor_value(kind), None), bound, 500),
        page_statement(src, Position(cursor_value(kind), key_values), bound, 500),
        probe_statement(src),
        upper_bound_statement(src),
        offset_page_statement(src, 1000, 500),
        count_statement(src, Position(cursor_value(kind), key_values), bound, 10_001),
        null_key_statement(src, cursor_value(kind), False, bound, 1001),
        null_cursor_statement(src, 1001),
    ]


@pytest.mark.parametrize("kind", ["timestamp", "rowversion", "version"])
@pytest.mark.parametrize("keys", [("Asset_ID",), ("Region", "Asset_ID")])
def test_generated_tsql_parses_for_every_cursor_kind(kind, keys):
    for statement in all_statements(TSQL, kind, keys):
        parsed = sqlglot.parse_one(statement.sql, read="tsql")
        assert isinstance(parsed, exp.Select), statement.sql
        # Every value is a parameter: the text holds no literal but the TOP (0) probe.
        literals = [node.this for node in parsed.find_all(exp.Literal)]
        assert literals in ([], ["0"]), statement.sql
        assert statement.sql.count("?") == len(statement.params), statement.sql


@pytest.mark.parametrize(("dialect", "kind"), [
    (POSTGRESQL, "timestamp"), (POSTGRESQL, "version"), (POSTGRESQL, "xid"),
    (SQLITE, "timestamp"), (SQLITE, "version"),
])
def test_generated_sql_parses_in_postgres_and_sqlite(dialect, kind):
    for statement in all_statements(dialect, kind, ("Region", "Asset_ID")):
        parsed = sqlglot.parse_one(statement.sql, read=SQLGLOT_DIALECT[dialect.name])
        assert isinstance(parsed, exp.Select)
        assert statement.sql.count("?") == len(statement.params)


def test_keyset_predicate_has_the_seekable_form_and_bound():
    statement = page_statement(
        source(TSQL), Position(datetime(2025, 1, 1), (7,)),
        UpperBound(datetime(2025, 2, 1), True), 100,
    )
    assert statement.sql == (
        "SELECT TOP (?) [Asset_ID], [Asset_Name], [ChangeTimestamp] "
        "FROM [dbo].[Usr_SW_Salesforce_Assets_Changes_V] "
        "WHERE [ChangeTimestamp] >= ? AND ([ChangeTimestamp] > ? OR [Asset_ID] > ?) "
        "AND [ChangeTimestamp] <= ? AND [Asset_ID] IS NOT NULL "
        "ORDER BY [ChangeTimestamp], [Asset_ID]"
    )
    assert statement.params == (
        100, datetime(2025, 1, 1), datetime(2025, 1, 1), 7, datetime(2025, 2, 1)
    )
    assert "OFFSET" not in statement.sql


def test_rowversion_reads_below_min_active_rowversion():
    src = source(TSQL, "rowversion")
    assert upper_bound_statement(src).sql == "SELECT MIN_ACTIVE_ROWVERSION()"
    statement = page_statement(
        src, Position(b"\x00" * 8, (1,)), UpperBound(b"\x00" * 7 + b"\x09", False), 10
    )
    assert "[ChangeTimestamp] < ?" in statement.sql
    assert statement.params[-1] == b"\x00" * 7 + b"\x09"


def test_composite_key_predicate_orders_by_every_key():
    statement = page_statement(
        source(POSTGRESQL, "version", ("Region", "Asset_ID")), Position(5, ("EU", 3)),
        UpperBound(9, True), 10,
    )
    assert ('"ChangeTimestamp" >= ? AND ("ChangeTimestamp" > ? OR "Region" > ? OR '
            '("Region" = ? AND "Asset_ID" > ?))') in statement.sql
    assert statement.params == (5, 5, "EU", "EU", 3, 9, 10)


@pytest.mark.parametrize("bad", [
    "Assets; DROP TABLE x", "Assets]--", 'a"b', "1abc", "", "a.b.c", "x y", "a/*",
])
def test_identifiers_that_are_not_plain_are_refused(bad):
    with pytest.raises(InvalidIdentifier):
        KeysetSource(TSQL, bad, "ts", "timestamp", ("id",), ())
    with pytest.raises(InvalidIdentifier):
        KeysetSource(TSQL, "dbo.v", bad or "-", "timestamp", ("id",), ())


def test_rowversion_needs_sql_server():
    with pytest.raises(ValueError, match="SQL Server"):
        source(POSTGRESQL, "rowversion")


def test_xid_needs_postgresql_and_reads_below_the_oldest_running_transaction():
    for other in (TSQL, SQLITE):
        with pytest.raises(ValueError, match="PostgreSQL"):
            source(other, "xid")
    src = source(POSTGRESQL, "xid")
    assert "pg_snapshot_xmin(pg_current_snapshot())" in upper_bound_statement(src).sql
    statement = page_statement(src, Position(700, (1,)), UpperBound(725, False), 10)
    assert '"ChangeTimestamp" < ?' in statement.sql
    assert statement.params[-2:] == (725, 10)


@pytest.mark.parametrize(("connection_string", "dialect"), [
    ("Driver={ODBC Driver 18 for SQL Server};Server=x", "tsql"),
    ("DRIVER=FreeTDS;Server=x", "tsql"),
    ("Driver={PostgreSQL Unicode};Server=x", "postgresql"),
    ("Driver={SQLite3};Database=a.db", "sqlite"),
])
def test_dialect_follows_the_odbc_driver(connection_string, dialect):
    assert dialect_for_connection_string(connection_string).name == dialect


def test_unknown_driver_asks_for_the_dialect_setting():
    with pytest.raises(ValueError, match="set the job's dialect"):
        dialect_for_connection_string("Driver={Oracle};")


@pytest.mark.parametrize("dialect", [TSQL, POSTGRESQL, SQLITE])
def test_a_partition_page_parses_and_filters_by_the_key_modulo_the_count(dialect):
    statement = page_statement(source(dialect), Position(datetime(2025, 10, 8), (7,)),
                               UpperBound(datetime(2025, 10, 9), True), 500,
                               KeyPartition(2, 3))
    sqlglot.parse_one(statement.sql, read=SQLGLOT_DIALECT[dialect.name])
    quoted = dialect.quote("Asset_ID")
    assert f"AND (({quoted} % 3) + 3) % 3 = 2 ORDER BY" in statement.sql
    # The partition adds no parameter: the statement binds what an unpartitioned one does.
    plain = page_statement(source(dialect), Position(datetime(2025, 10, 8), (7,)),
                           UpperBound(datetime(2025, 10, 9), True), 500)
    assert statement.params == plain.params


def test_a_composite_key_has_no_partition_predicate():
    with pytest.raises(ValueError, match="one integer key column"):
        page_statement(source(keys=("Asset_ID", "Line")), Position(datetime(2025, 10, 8)),
                       UpperBound(datetime(2025, 10, 9), True), 500, KeyPartition(0, 2))


@pytest.mark.parametrize("dialect", [TSQL, POSTGRESQL, SQLITE])
@pytest.mark.parametrize("partition", [None, KeyPartition(0, 4), KeyPartition(3, 4)])
def test_no_page_takes_a_row_whose_key_is_null_partitioned_or_not(dialect, partition):
    # Where NULL sorts differs (first on SQL Server and SQLite, last on PostgreSQL): a page
    # that held one would have no position after it. The run's begin reports them.
    for keys in (("Asset_ID",), ("Region", "Asset_ID")):
        if partition is not None and len(keys) > 1:
            continue
        for after in (Position(datetime(2025, 10, 8)), Position(datetime(2025, 10, 8),
                                                                (7,) * len(keys))):
            statement = page_statement(source(dialect, keys=keys), after,
                                       UpperBound(datetime(2025, 10, 9), True), 500,
                                       partition)
            sqlglot.parse_one(statement.sql, read=SQLGLOT_DIALECT[dialect.name])
            where = statement.sql.split(" WHERE ", 1)[1].split(" ORDER BY ", 1)[0]
            for key in keys:
                assert f" AND {dialect.quote(key)} IS NOT NULL" in where
            assert " IS NULL" not in where.replace(" IS NOT NULL", "")
    assert not any(KeyPartition(index, 4).holds(None) for index in range(4))


@pytest.mark.parametrize("dialect", [TSQL, POSTGRESQL, SQLITE])
@pytest.mark.parametrize("kind", ["timestamp", "version"])
def test_rows_without_key_or_cursor_are_found_by_statements_of_their_own(dialect, kind):
    src = source(dialect, kind, ("Region", "Asset_ID"))
    bound = UpperBound(cursor_value(kind), True)
    keys = null_key_statement(src, cursor_value(kind), False, bound, 1001)
    cursors = null_cursor_statement(src, 1001)
    for statement in (keys, cursors):
        parsed = sqlglot.parse_one(statement.sql, read=SQLGLOT_DIALECT[dialect.name])
        assert isinstance(parsed, exp.Select)
        assert statement.sql.count("?") == len(statement.params)
    quote = dialect.quote
    assert (f"({quote('Region')} IS NULL OR {quote('Asset_ID')} IS NULL)"
            in keys.sql.split(" WHERE ", 1)[1])
    assert f"WHERE {quote('ChangeTimestamp')} IS NULL ORDER BY" in cursors.sql
