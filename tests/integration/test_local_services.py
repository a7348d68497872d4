"""The local services are the real thing: Azurite speaks the storage protocol with ETag
concurrency, and pyodbc talks to SQLite and PostgreSQL through their ODBC drivers."""

from __future__ import annotations

import uuid

import pyodbc
import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient


def test_table_entity_round_trips_and_stale_etag_write_is_refused(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists(f"t{uuid.uuid4().hex[:12]}")
    table.create_entity({"PartitionKey": "job", "RowKey": "watermark", "Cursor": "1900-01-01"})

    first_read = table.get_entity("job", "watermark")
    assert first_read["Cursor"] == "1900-01-01"

    table.update_entity(
        {"PartitionKey": "job", "RowKey": "watermark", "Cursor": "2024-05-01"},
        mode=UpdateMode.REPLACE,
        etag=first_read.metadata["etag"],
        match_condition=MatchConditions.IfNotModified,
    )
    with pytest.raises(ResourceModifiedError):
        table.update_entity(
            {"PartitionKey": "job", "RowKey": "watermark", "Cursor": "2000-01-01"},
            mode=UpdateMode.REPLACE,
            etag=first_read.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    assert table.get_entity("job", "watermark")["Cursor"] == "2024-05-01"


def test_blob_round_trips_bytes_exactly(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"c{uuid.uuid4().hex[:12]}")
    payload = "External_Id__c,Name\nA-1,\"Acme, Inc.\"\nA-2,Zürich AG\n".encode()
    container.upload_blob("load/accounts.csv", payload)
    assert container.download_blob("load/accounts.csv").readall() == payload
    assert [blob.name for blob in container.list_blobs()] == ["load/accounts.csv"]


def _write_and_read_back(connection_string: str, table: str, create_sql: str) -> list[tuple]:
    with pyodbc.connect(connection_string, autocommit=False) as connection:
        cursor = connection.cursor()
        cursor.execute(create_sql)
        cursor.executemany(
            f"INSERT INTO {table} (id, name) VALUES (?, ?)",
            [(1, "Pump, 3 kW"), (2, "Ventil Zürich")],
        )
        connection.commit()
    with pyodbc.connect(connection_string) as connection:
        rows = connection.cursor().execute(
            f"SELECT id, name FROM {table} WHERE id >= ? ORDER BY id", 1
        ).fetchall()
    return [tuple(row) for row in rows]


def test_sqlite_through_odbc_reads_what_it_wrote(sqlite_odbc):
    rows = _write_and_read_back(
        sqlite_odbc, "asset_changes",
        "CREATE TABLE asset_changes (id INTEGER PRIMARY KEY, name TEXT)",
    )
    assert rows == [(1, "Pump, 3 kW"), (2, "Ventil Zürich")]


def test_postgres_through_odbc_reads_what_it_wrote(postgres):
    # The session's database is shared: a name of this test's own.
    table = f"asset_changes_{uuid.uuid4().hex[:10]}"
    rows = _write_and_read_back(
        postgres.odbc_connection_string, table,
        f"CREATE TABLE {table} (id integer PRIMARY KEY, name text)",
    )
    assert rows == [(1, "Pump, 3 kW"), (2, "Ventil Zürich")]
    with pyodbc.connect(postgres.odbc_connection_string) as connection:
        version = connection.cursor().execute("SELECT version()").fetchone()[0]
    assert version.startswith("PostgreSQL")
