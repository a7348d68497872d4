"""Keyset paging on real SQLite and PostgreSQL through pyodbc."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from shared.sql.dialects import dialect_named
from shared.sql.keyset import (
    KeyPartition,
    KeysetSource,
    Position,
    UpperBound,
    count_statement,
    null_key_statement,
    page_statement,
    position_of,
    upper_bound_from,
    upper_bound_statement,
)
from shared.sql.source import SqlSource
from tests.sync.sources import BASE, AssetSource, create_asset_source


@pytest.fixture(params=["sqlite", "postgresql"])
def assets(request) -> AssetSource:
    if request.param == "sqlite":
        return create_asset_source(request.getfixturevalue("sqlite_odbc"), "sqlite")
    return create_asset_source(
        request.getfixturevalue("postgres").odbc_connection_string, "postgresql"
    )


def keyset(assets: AssetSource) -> KeysetSource:
    return KeysetSource(
        dialect_named(assets.dialect), assets.view, "ChangeTimestamp", "timestamp",
        ("Asset_ID",), ("Asset_ID", "Status"),
    )


def read_all(assets: AssetSource, bound: UpperBound, page_size: int) -> list[list[int]]:
    src = keyset(assets)
    source = SqlSource(assets.connection_string, assets.view)
    position = Position(datetime(1900, 1, 1), None)
    pages = []
    while True:
        rows = source.fetch_rows(page_statement(src, position, bound, page_size))
        if not rows:
            return pages
        pages.append([row["Asset_ID"] for row in rows])
        position = position_of(src, rows[-1])


def test_rows_sharing_one_timestamp_are_paged_without_loss_or_repeat(assets):
    # Keys inserted out of order, all at one timestamp: only the key separates pages.
    ids = [(index * 7919) % 1000 + 1 for index in range(1000)]
    assets.insert((asset_id, BASE) for asset_id in ids)
    pages = read_all(assets, UpperBound(BASE, True), 100)
    assert [len(page) for page in pages] == [100] * 10
    assert [asset_id for page in pages for asset_id in page] == sorted(ids)


def test_pages_cross_timestamp_groups_in_cursor_then_key_order(assets):
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id % 3)) for asset_id in range(1, 31))
    pages = read_all(assets, UpperBound(BASE + timedelta(hours=1), True), 7)
    flat = [asset_id for page in pages for asset_id in page]
    expected = sorted(range(1, 31), key=lambda asset_id: (asset_id % 3, asset_id))
    assert flat == expected


def test_changes_are_counted_after_the_position_up_to_the_bound_and_the_limit(assets):
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id % 4)) for asset_id in range(1, 41))
    assets.insert([(41, BASE + timedelta(hours=1))])  # beyond the bound
    src = keyset(assets)
    source = SqlSource(assets.connection_string, assets.view)
    bound = UpperBound(BASE + timedelta(seconds=3), True)

    def count(after: Position, limit: int) -> int:
        return source.fetch_value(count_statement(src, after, bound, limit))

    assert count(Position(datetime(1900, 1, 1), None), 100) == 40
    assert count(Position(datetime(1900, 1, 1), None), 11) == 11  # stops at the limit
    # After (BASE + 1 s, key 21): the rest of that second (25, 29, 33, 37), the later two.
    assert count(Position(BASE + timedelta(seconds=1), (21,)), 100) == 4 + 10 + 10


def test_upper_bound_leaves_later_rows_for_the_next_run(assets):
    assets.insert([(1, BASE), (2, BASE + timedelta(seconds=5)), (3, BASE + timedelta(hours=1))])
    pages = read_all(assets, UpperBound(BASE + timedelta(seconds=5), True), 10)
    assert pages == [[1, 2]]


def test_timestamp_bound_is_the_database_clock_minus_the_lag(assets):
    src = keyset(assets)
    source = SqlSource(assets.connection_string, assets.view)
    database_now = source.fetch_value(upper_bound_statement(src))
    bound = upper_bound_from(src, database_now, timedelta(seconds=30))
    assert isinstance(bound.value, datetime)
    assert bound.inclusive
    # Whatever the database's time zone, its clock moved forward in real time.
    later = upper_bound_from(src, source.fetch_value(upper_bound_statement(src)), timedelta(0))
    assert later.value - bound.value >= timedelta(seconds=30)


def test_version_cursor_pages_on_a_bigint_column(postgres):
    connection_string = postgres.odbc_connection_string
    import pyodbc

    table = f"versioned_{uuid.uuid4().hex[:8]}"  # the session's database is shared
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, version bigint NOT NULL)")
        connection.execute(f"CREATE INDEX ON {table} (version, id)")
        connection.execute(
            f"INSERT INTO {table} SELECT g, (g / 10) + 1 FROM generate_series(1, 95) g"
        )
    src = KeysetSource(dialect_named("postgresql"), table, "version", "version",
                       ("id",), ("id",))
    source = SqlSource(connection_string, table)
    bound = upper_bound_from(src, source.fetch_value(upper_bound_statement(src)), timedelta(0))
    assert bound.value == 10
    position, seen = Position(0, None), []
    while rows := source.fetch_rows(page_statement(src, position, bound, 20)):
        seen += [row["id"] for row in rows]
        position = position_of(src, rows[-1])
    assert sorted(seen) == list(range(1, 96)) and len(seen) == 95


def read_from(source: SqlSource, src: KeysetSource, position: Position) -> tuple[list, Position]:
    """Every row after `position` up to the bound fixed now, as a run reads them."""
    bound = upper_bound_from(src, source.fetch_value(upper_bound_statement(src)), timedelta(0))
    seen = []
    while rows := source.fetch_rows(page_statement(src, position, bound, 20)):
        seen += [row["id"] for row in rows]
        position = position_of(src, rows[-1])
    return seen, position


def test_a_late_commit_is_lost_below_a_max_version_bound_but_read_below_an_xid_bound(
    postgres,
):
    """Two writers: T1 takes version 1 and stays open, T2 takes version 2 and commits.

    A bound of MAX(version) lets a run read 2 and move past it, so T1's row, committed
    afterwards with version 1, is never read. The xid bound (oldest running transaction)
    holds every row back until T1 ended, then reads both.
    """
    import pyodbc

    table = f"late_{uuid.uuid4().hex[:8]}"
    connection_string = postgres.odbc_connection_string
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.execute(f"CREATE SEQUENCE {table}_seq")
        connection.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, "
            f"version bigint NOT NULL DEFAULT nextval('{table}_seq'), "
            "xid bigint NOT NULL DEFAULT CAST(CAST(pg_current_xact_id() AS text) AS bigint))"
        )
    sources = {
        kind: KeysetSource(dialect_named("postgresql"), table, kind, kind, ("id",), ("id",))
        for kind in ("version", "xid")
    }
    source = SqlSource(connection_string, table)
    late = pyodbc.connect(connection_string, autocommit=False)
    try:
        late.execute(f"INSERT INTO {table} (id) VALUES (1)")  # T1: version 1, still open
        with pyodbc.connect(connection_string, autocommit=True) as other:
            other.execute(f"INSERT INTO {table} (id) VALUES (2)")  # T2: version 2, committed
        first = {kind: read_from(source, src, Position(0)) for kind, src in sources.items()}
        late.commit()
    finally:
        late.close()
    second = {kind: read_from(source, src, first[kind][1])[0]
              for kind, src in sources.items()}

    assert (first["version"][0], second["version"]) == ([2], [])  # row 1 is lost
    assert (first["xid"][0], sorted(second["xid"])) == ([], [1, 2])


def test_postgres_plan_seeks_the_cursor_key_index(postgres_assets):
    assets = postgres_assets
    assets.insert(
        (asset_id, BASE + timedelta(seconds=asset_id // 10)) for asset_id in range(1, 5001)
    )
    src = keyset(assets)
    statement = page_statement(src, Position(BASE + timedelta(seconds=200), (2000,)),
                               UpperBound(BASE + timedelta(days=1), True), 100)
    with assets.connect() as connection:
        connection.execute(f"ANALYZE {assets.table}")
        plan = "\n".join(row[0] for row in connection.execute(
            "EXPLAIN " + statement.sql.replace("?", "%s") % tuple(
                f"'{value}'" if isinstance(value, datetime) else str(value)
                for value in statement.params
            )
        ).fetchall())
    assert "Index" in plan and "ix_" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_sqlite_plan_searches_the_cursor_key_index(sqlite_assets):
    src = keyset(sqlite_assets)
    statement = page_statement(src, Position(BASE, (1,)), UpperBound(BASE, True), 100)
    with sqlite_assets.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.execute(
            "EXPLAIN QUERY PLAN " + statement.sql, *statement.params
        ).fetchall())
    assert "SEARCH" in plan and "ix_" in plan, plan


def test_partitions_read_every_row_once_negative_keys_included(assets):
    ids = list(range(-25, 26))
    assets.insert((asset_id, BASE + timedelta(seconds=asset_id % 4)) for asset_id in ids)
    src = keyset(assets)
    source = SqlSource(assets.connection_string, assets.view)
    bound = UpperBound(BASE + timedelta(hours=1), True)
    read: list[list[int]] = []
    for index in range(3):
        partition = KeyPartition(index, 3)
        position, keys = Position(datetime(1900, 1, 1), None), []
        while rows := source.fetch_rows(page_statement(src, position, bound, 7, partition)):
            keys += [row["Asset_ID"] for row in rows]
            position = position_of(src, rows[-1])
        assert all(partition.holds(key) for key in keys)
        read.append(keys)
    assert sorted(key for keys in read for key in keys) == ids  # each row in one part
    assert all(len(keys) == 17 for keys in read)


@pytest.mark.parametrize("key_type", ["BIGINT", "NUMERIC(18,0)"])
def test_partitions_together_read_the_rows_one_reader_reads_big_keys_and_null_keys_none(
    assets, key_type
):
    # A key column that allows NULL (a view over an outer join): `NULL % n` is NULL, in no
    # partition. No page reads such a row, partitioned or not: the run's begin finds it
    # (null_key_statement) and dead-letters it instead.
    table = f"keyed_{uuid.uuid4().hex[:8]}"
    big = 9_007_199_254_740_993  # above 2**53: exact only if no float is involved
    keys = [None, -7, 0, 1, 2, 5, big, -big, None]
    with assets.connect() as connection:
        stamp_type = "TEXT" if assets.dialect == "sqlite" else "TIMESTAMP"
        connection.execute(f'CREATE TABLE {table} ("Asset_ID" {key_type} NULL, '
                           f'"ChangeTimestamp" {stamp_type} NOT NULL, "Status" VARCHAR(20))')
        for offset, key in enumerate(keys):
            connection.execute(f'INSERT INTO {table} VALUES (?, ?, ?)', key,
                               assets.stamp(BASE + timedelta(seconds=offset)), f"s{offset}")
    src = KeysetSource(dialect_named(assets.dialect), table, "ChangeTimestamp", "timestamp",
                       ("Asset_ID",), ("Asset_ID", "Status"))
    source = SqlSource(assets.connection_string, table)
    start, bound = Position(datetime(1900, 1, 1), None), UpperBound(BASE + timedelta(1), True)

    def statuses(partition: KeyPartition | None) -> list[str]:
        return [row["Status"] for row in
                source.fetch_rows(page_statement(src, start, bound, 100, partition))]

    read = [statuses(KeyPartition(index, 3)) for index in range(3)]
    assert sorted(status for part in read for status in part) == sorted(statuses(None))
    assert sorted(statuses(None)) == [f"s{index}" for index in range(1, 8)]
    found = source.fetch_rows(null_key_statement(src, start.cursor, False, bound, 100))
    assert [row["Status"] for row in found] == ["s0", "s8"]


def test_a_composite_key_with_a_null_in_any_column_is_in_no_page_and_found_apart(assets):
    # NULL sorts first in SQLite and last in PostgreSQL: pages of one row must read every
    # row with a whole key once, whichever way the NULLs beside them sort.
    table = f"regions_{uuid.uuid4().hex[:8]}"
    rows = [("EU", 1, 0), ("EU", None, 0), (None, 1, 0), ("EU", 2, 0), ("US", 1, 1),
            (None, None, 1), ("US", None, 1), ("US", 2, 1), ("EU", 1, 2)]
    with assets.connect() as connection:
        stamp_type = "TEXT" if assets.dialect == "sqlite" else "TIMESTAMP"
        connection.execute(f'CREATE TABLE {table} ("Region" VARCHAR(4), "Asset_ID" INTEGER, '
                           f'"ChangeTimestamp" {stamp_type} NOT NULL, "Status" VARCHAR(20))')
        for index, (region, asset_id, second) in enumerate(rows):
            connection.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", region, asset_id,
                               assets.stamp(BASE + timedelta(seconds=second)), f"s{index}")
    src = KeysetSource(dialect_named(assets.dialect), table, "ChangeTimestamp", "timestamp",
                       ("Region", "Asset_ID"), ("Status",))
    source = SqlSource(assets.connection_string, table)
    bound = UpperBound(BASE + timedelta(seconds=2), True)
    position, seen = Position(datetime(1900, 1, 1), None), []
    while page := source.fetch_rows(page_statement(src, position, bound, 1)):
        seen += [row["Status"] for row in page]
        position = position_of(src, page[-1])

    assert seen == ["s0", "s3", "s4", "s7", "s8"]
    found = source.fetch_rows(null_key_statement(src, datetime(1900, 1, 1), False, bound, 100))
    assert sorted(row["Status"] for row in found) == ["s1", "s2", "s5", "s6"]
