"""Real source databases for the sync tests: an asset changes table + view shaped like
seed 000's, in SQLite or PostgreSQL, reached through pyodbc."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyodbc

from shared.sql.keyset import format_sqlite_timestamp
from shared.sync.asset_changes import COLUMNS, asset_record
from shared.sync.job import SalesforceSinkSpec, SourceSpec, SyncJob

BASE = datetime(2025, 10, 8, 9, 0, 0)
COLUMN_LIST = ", ".join(f'"{name}"' for name in (
    "Asset_ID", "ChangeTimestamp", "Asset_Name", "Serial_Number", "Status", "Quantity",
    "Price", "Install_Date", "Contact_Email",
))


@dataclass
class AssetSource:
    connection_string: str
    dialect: str
    table: str
    view: str

    def connect(self) -> pyodbc.Connection:
        return pyodbc.connect(self.connection_string, autocommit=True)

    def stamp(self, value: datetime):
        return format_sqlite_timestamp(value) if self.dialect == "sqlite" else value

    def insert(self, rows: Iterable[tuple[int | None, datetime | None]],
               status: str = "Installed") -> None:
        """Insert assets (id, ChangeTimestamp) with generated column values (either may be
        None in a source made with `nullable`)."""
        rows = list(rows)
        with self.connect() as connection:
            cursor = connection.cursor()
            # psqlODBC's array binding (fast_executemany) drops fractional seconds.
            cursor.fast_executemany = self.dialect != "sqlite" and all(
                stamp is not None and stamp.microsecond == 0 for _, stamp in rows
            )
            params = [
                (asset_id, None if stamp is None else self.stamp(stamp), f"Asset {asset_id}",
                 f"SN-{asset_id or 0:08d}", status, 1, 10.5, "2024-01-02",
                 f"owner{asset_id}@example.com")
                for asset_id, stamp in rows
            ]
            cursor.executemany(
                f"INSERT INTO {self.table} ({COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )

    def touch(self, asset_id: int, stamp: datetime, status: str) -> None:
        with self.connect() as connection:
            connection.execute(
                f'UPDATE {self.table} SET "ChangeTimestamp" = ?, "Status" = ? '
                'WHERE "Asset_ID" = ?',
                self.stamp(stamp), status, asset_id,
            )


def create_asset_source(connection_string: str, dialect: str,
                        changes_per_asset: bool = False, nullable: bool = False) -> AssetSource:
    """A table and the seed's view over it: one row per asset, or with `changes_per_asset`
    one row per change of an asset (a CDC-like view: keyed on the change's time and the
    asset). `nullable`: the key and the cursor may be NULL (as a view's outer join may
    give them), and no primary key."""
    suffix = uuid.uuid4().hex[:10]
    table, view = f"assets_{suffix}", f"asset_changes_{suffix}"
    stamp_type = "TIMESTAMP" if dialect == "sqlite" else "TIMESTAMP(3)"
    not_null = "" if nullable else " NOT NULL"
    primary_key = ("" if nullable else
                   ', PRIMARY KEY ("ChangeTimestamp", "Asset_ID")' if changes_per_asset
                   else ', PRIMARY KEY ("Asset_ID")')
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.execute(
            f'CREATE TABLE {table} ("Asset_ID" INTEGER{not_null}, '
            f'"ChangeTimestamp" {stamp_type}{not_null}, "Asset_Name" VARCHAR(80) NOT NULL, '
            '"Serial_Number" VARCHAR(40), "Status" VARCHAR(40), "Quantity" NUMERIC(12,2), '
            '"Price" NUMERIC(12,2), "Install_Date" DATE, "Contact_Email" VARCHAR(120)'
            f'{primary_key})'
        )
        connection.execute(
            f'CREATE INDEX ix_{suffix} ON {table} ("ChangeTimestamp", "Asset_ID")'
        )
        connection.execute(
            f"CREATE VIEW {view} AS SELECT {COLUMN_LIST} FROM {table}"
        )
    return AssetSource(connection_string, dialect, table, view)


def stamps(count: int, start: datetime = BASE, step: timedelta = timedelta(seconds=1)):
    return [start + step * index for index in range(count)]


def asset_job(source: AssetSource, **changes) -> SyncJob:
    """The example job's description pointed at a test source."""
    values = {
        "name": "asset-changes",
        "source": SourceSpec(
            connection_string=source.connection_string,
            relation=source.view,
            cursor_column="ChangeTimestamp",
            cursor_kind="timestamp",
            key_columns=("Asset_ID",),
            columns=COLUMNS,
            initial_cursor=datetime(1900, 1, 1),
            lag=timedelta(0),
            dialect=source.dialect,
            login_timeout=3,
        ),
        "map_record": asset_record,
        "masked_fields": ("Contact_Email",),
        "sink": SalesforceSinkSpec("Asset", "External_Id__c"),
        "schedule_setting": "SYNC_ASSET_CHANGES_SCHEDULE",
        "page_size": 100,
        "max_run_time": timedelta(minutes=5),
        "min_interval": timedelta(seconds=0),
    }
    values.update(changes)
    return SyncJob(**values)


class RecordingSink:
    """Passes pages to a real sink and remembers which records it handed over, in order."""

    def __init__(self, sink, after_page=None) -> None:
        self.sink = sink
        self.delivered: list[str] = []
        self.after_page = after_page

    def deliver(self, records):
        delivery = self.sink.deliver(records)
        self.delivered += [record["External_Id__c"] for record in records]
        if self.after_page is not None:
            self.after_page(len(self.delivered))
        return delivery
