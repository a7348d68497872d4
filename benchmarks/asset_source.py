"""The sync benchmarks' source: seed 000's asset changes in PostgreSQL, and its bare fetch.

A table shaped like seed 000's view (9 columns, three rows per timestamp) with an index on
(ChangeTimestamp, Asset_ID), optionally behind a view; `bare_fetch` reads it the way the
floor does, with nothing of the app in between.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import pyodbc  # noqa: E402

from shared.sync.asset_changes import COLUMNS  # noqa: E402

QUOTED = ", ".join(f'"{column}"' for column in COLUMNS)


def load_assets(connection_string: str, table: str, rows: int, view: str | None = None) -> None:
    """`rows` asset changes in a new `table` (and `view` over it, when named)."""
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        if view is not None:
            connection.execute(f"DROP VIEW IF EXISTS {view}")
        connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        connection.execute(
            f'CREATE TABLE {table} ("Asset_ID" bigint PRIMARY KEY, '
            '"ChangeTimestamp" timestamp(3) NOT NULL, "Asset_Name" varchar(80) NOT NULL, '
            '"Serial_Number" varchar(40), "Status" varchar(40), "Quantity" numeric(12,2), '
            '"Price" numeric(12,2), "Install_Date" date, "Contact_Email" varchar(120))'
        )
        connection.execute(
            f"INSERT INTO {table} SELECT g, timestamp '2025-01-01' + (g / 3) * "
            "interval '1 second', 'Pump ' || g, 'SN-' || g, 'Installed', 1 + g % 5, "
            "100 + g % 1000, date '2024-01-01' + (g % 365), 'contact' || g || '@example.com' "
            "FROM generate_series(1, ?) g", rows,
        )
        connection.execute(f'CREATE INDEX ON {table} ("ChangeTimestamp", "Asset_ID")')
        if view is not None:
            connection.execute(f"CREATE VIEW {view} AS SELECT {QUOTED} FROM {table}")
        connection.execute(f"ANALYZE {table}")


def bare_fetch(connection_string: str, relation: str) -> int:
    """Every row of `relation` in sync order, `fetchmany(5000)` at a time: the rows read."""
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        cursor = connection.execute(
            f'SELECT {QUOTED} FROM {relation} ORDER BY "ChangeTimestamp", "Asset_ID"'
        )
        rows = 0
        while batch := cursor.fetchmany(5000):
            rows += len(batch)
    return rows
