"""Where an event's record is read: a view of the SQL source, many ids per query.

`ViewSource.read_rows(ids)` reads the rows of many ids with one parameterised `IN (...)`
query per 500 ids (SQL Server takes at most 2,100 parameters) and maps none of them; the
batch job `asset-events` (asset_events_job.py) maps each row as the sync job does
(`asset_record`). Errors are `SourceError`s with a code, never tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.sql.dialects import dialect_for_connection_string, dialect_named
from shared.sql.keyset import Statement
from shared.sql.source import SourceError, SqlSource
from shared.sync.asset_changes import COLUMNS, asset_record

SOURCE_CHUNK = 500  # ids per query; SQL Server takes at most 2,100 parameters


@dataclass(frozen=True)
class ViewSource:
    """Where an object's rows are read: a view, its key column and the mapping to a record."""

    connection_string: str = field(repr=False)
    relation: str
    key_column: str
    columns: tuple[str, ...]
    map_record: Callable[[Mapping[str, Any]], dict[str, Any]]
    dialect: str | None = None
    login_timeout: int = 15
    query_timeout: int = 120

    def read_rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of `ids` by id (as text); an id without a row is absent."""
        if not self.connection_string:
            raise SourceError("SOURCE_NOT_CONFIGURED", "no source connection is configured "
                              "(SYNC_ASSET_CHANGES_SOURCE_CONNECTION)")
        dialect = (dialect_named(self.dialect) if self.dialect
                   else dialect_for_connection_string(self.connection_string))
        source = SqlSource(self.connection_string, self.relation, self.login_timeout,
                           self.query_timeout)
        select = ", ".join(dialect.quote(column) for column in self.columns)
        relation, key = dialect.quote_relation(self.relation), dialect.quote(self.key_column)
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), SOURCE_CHUNK):
            chunk = [int(value) for value in ids[start:start + SOURCE_CHUNK]]
            marks = ", ".join("?" for _ in chunk)
            statement = Statement(f"SELECT {select} FROM {relation} WHERE {key} IN ({marks})",
                                  tuple(chunk))
            for row in source.fetch_rows(statement):
                rows[str(row[self.key_column])] = row
        return rows


def asset_view_source(connection_string: str | None, view: str, dialect: str | None,
                      login_timeout: int, query_timeout: int) -> ViewSource:
    return ViewSource(connection_string or "", view, "Asset_ID", COLUMNS, asset_record,
                      dialect, login_timeout, query_timeout)
