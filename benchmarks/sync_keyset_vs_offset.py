"""Cost per page of keyset paging vs OFFSET, at 10k, 100k and 1M rows, on PostgreSQL
and SQLite through pyodbc, with the SQL the sync generates.

For each database and size: a table of (ts, id, status, name) with an index on (ts, id),
three rows per timestamp (ties across page boundaries), 500-row pages. Printed: the median
time of the first and of the last page for OFFSET and for keyset, and the ratio last/first
for each. OFFSET re-reads every earlier row (the ratio grows with the table); keyset seeks
(the ratio stays near 1).

    python benchmarks/sync_keyset_vs_offset.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import pyodbc  # noqa: E402

from devtools import services  # noqa: E402
from shared.sql.dialects import dialect_named  # noqa: E402
from shared.sql.keyset import (  # noqa: E402
    KeysetSource,
    Position,
    UpperBound,
    offset_page_statement,
    page_statement,
)

PAGE = 500
REPEATS = 7
BASE = datetime(2025, 1, 1)


def load_postgres(connection: pyodbc.Connection, table: str, rows: int) -> None:
    connection.execute(f"DROP TABLE IF EXISTS {table}")
    connection.execute(f"CREATE TABLE {table} (ts timestamp(3) NOT NULL, id bigint NOT NULL, "
                       "status varchar(20), name varchar(60))")
    connection.execute(
        f"INSERT INTO {table} SELECT timestamp '2025-01-01' + (g / 3) * interval '1 second', "
        "g, 'Installed', 'Asset ' || g FROM generate_series(1, ?) g", rows,
    )
    connection.execute(f"CREATE INDEX ON {table} (ts, id)")
    connection.execute(f"ANALYZE {table}")


def load_sqlite(connection: pyodbc.Connection, table: str, rows: int) -> None:
    connection.execute(f"DROP TABLE IF EXISTS {table}")
    connection.execute(f"CREATE TABLE {table} (ts TIMESTAMP NOT NULL, id INTEGER NOT NULL, "
                       "status TEXT, name TEXT)")
    connection.execute(
        f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
        f"INSERT INTO {table} SELECT strftime('%Y-%m-%d %H:%M:%f', '2025-01-01', "
        "'+' || (n / 3) || ' seconds'), n, 'Installed', 'Asset ' || n FROM g", rows,
    )
    connection.execute(f"CREATE INDEX ix_{table} ON {table} (ts, id)")
    connection.execute("ANALYZE")


def timed(connection: pyodbc.Connection, sql: str, params: tuple) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        cursor = connection.execute(sql, *params)
        fetched = cursor.fetchall()
        samples.append(time.perf_counter() - start)
        assert len(fetched) == PAGE, len(fetched)
    return statistics.median(samples)


def measure(connection: pyodbc.Connection, dialect: str, table: str, rows: int) -> dict:
    src = KeysetSource(dialect_named(dialect), table, "ts", "timestamp", ("id",),
                       ("id", "status", "name"))
    bound = UpperBound(BASE + timedelta(days=365), True)
    last_offset = rows - PAGE
    # Position of the row just before the last page: (ts, id) of row number last_offset.
    before_last = Position(BASE + timedelta(seconds=last_offset // 3), (last_offset,))
    first = Position(BASE - timedelta(days=1), None)
    result = {}
    for label, statement in (
        ("offset_first", offset_page_statement(src, 0, PAGE)),
        ("offset_last", offset_page_statement(src, last_offset, PAGE)),
        ("keyset_first", page_statement(src, first, bound, PAGE)),
        ("keyset_last", page_statement(src, before_last, bound, PAGE)),
    ):
        result[label] = timed(connection, statement.sql, statement.params)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    postgres = services.start_postgres()
    workdir = Path(tempfile.mkdtemp(prefix="keyset-bench-"))
    try:
        databases = {
            "postgresql": (pyodbc.connect(postgres.odbc_connection_string, autocommit=True),
                           load_postgres),
            "sqlite": (pyodbc.connect(services.sqlite_odbc_connection_string(
                workdir / "bench.db"), autocommit=True), load_sqlite),
        }
        print(f"page size {PAGE}, median of {REPEATS}; times in ms")
        print(f"{'database':<11}{'rows':>10}{'OFFSET 1st':>12}{'OFFSET last':>13}"
              f"{'ratio':>8}{'keyset 1st':>12}{'keyset last':>13}{'ratio':>8}")
        for name, (connection, load) in databases.items():
            for rows in sizes:
                table = f"bench_{rows}"
                load(connection, table, rows)
                m = measure(connection, name, table, rows)
                print(f"{name:<11}{rows:>10,}{m['offset_first'] * 1e3:>12.2f}"
                      f"{m['offset_last'] * 1e3:>13.2f}"
                      f"{m['offset_last'] / m['offset_first']:>8.1f}"
                      f"{m['keyset_first'] * 1e3:>12.2f}{m['keyset_last'] * 1e3:>13.2f}"
                      f"{m['keyset_last'] / m['keyset_first']:>8.2f}", flush=True)
                connection.execute(f"DROP TABLE {table}")
            connection.close()
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
