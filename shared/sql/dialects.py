"""The SQL each supported database needs: quoting, paging, the clock, the version bound.

Three dialects, all reached through pyodbc: SQL Server (`tsql`), PostgreSQL (`postgresql`)
and SQLite (`sqlite`). Only what differs between them lives here; the keyset predicate
itself is the same portable `>= … AND (… OR …)` form for all three (see keyset.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.sql.identifiers import split_qualified_name, validate_identifier

DIALECTS = ("tsql", "postgresql", "sqlite")


@dataclass(frozen=True)
class Dialect:
    name: str
    open_quote: str
    close_quote: str
    # Current time on the database's own clock, the one its change timestamps come from
    # (SQL Server local time, PostgreSQL session time zone, SQLite UTC).
    now_expression: str
    # SQLite keeps timestamps as text: bound values must be text in the same format.
    timestamps_as_text: bool = False

    def quote(self, name: str) -> str:
        validate_identifier(name)
        return f"{self.open_quote}{name}{self.close_quote}"

    def quote_relation(self, name: str) -> str:
        return ".".join(self.quote(part) for part in split_qualified_name(name))

    def select_page(self, columns: str, relation: str, where: str, order_by: str) -> str:
        """A statement whose last parameter is the page size."""
        if self.name == "tsql":
            return f"SELECT TOP (?) {columns} FROM {relation} WHERE {where} ORDER BY {order_by}"
        return f"SELECT {columns} FROM {relation} WHERE {where} ORDER BY {order_by} LIMIT ?"

    def select_offset_page(self, columns: str, relation: str, order_by: str) -> str:
        """OFFSET paging, for the benchmark that shows why it is not used (last two params)."""
        if self.name == "tsql":
            return (f"SELECT {columns} FROM {relation} ORDER BY {order_by} "
                    "OFFSET ? ROWS FETCH NEXT ? ROWS ONLY")
        return f"SELECT {columns} FROM {relation} ORDER BY {order_by} LIMIT ? OFFSET ?"

    def select_no_rows(self, columns: str, relation: str) -> str:
        """Checks that the relation and its columns exist without reading any row."""
        if self.name == "tsql":
            return f"SELECT TOP (0) {columns} FROM {relation}"
        return f"SELECT {columns} FROM {relation} LIMIT 0"


TSQL = Dialect("tsql", "[", "]", "SYSDATETIME()")
POSTGRESQL = Dialect("postgresql", '"', '"', "LOCALTIMESTAMP")
SQLITE = Dialect(
    "sqlite", '"', '"', "strftime('%Y-%m-%d %H:%M:%f', 'now')", timestamps_as_text=True
)
BY_NAME = {dialect.name: dialect for dialect in (TSQL, POSTGRESQL, SQLITE)}

_DRIVER = re.compile(r"(?:^|;)\s*driver\s*=\s*(\{[^}]*\}|[^;]*)", re.IGNORECASE)


def dialect_named(name: str) -> Dialect:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown SQL dialect {name!r}: use one of {', '.join(DIALECTS)}"
        ) from None


def dialect_for_connection_string(connection_string: str) -> Dialect:
    """The dialect implied by the ODBC driver named in the connection string."""
    match = _DRIVER.search(connection_string or "")
    driver = match.group(1).strip("{} ").lower() if match else ""
    if "sql server" in driver or "freetds" in driver or "tds" in driver:
        return TSQL
    if "postgres" in driver:
        return POSTGRESQL
    if "sqlite" in driver:
        return SQLITE
    raise ValueError(
        "cannot tell the SQL dialect from the connection string's Driver "
        f"({driver or 'none given'}): set the job's dialect to one of {', '.join(DIALECTS)}"
    )
