"""Reading pages from a SQL source through pyodbc, with errors a person can act on.

Every failure becomes a `SourceError` with a code (`SOURCE_UNREACHABLE`,
`SOURCE_LOGIN_FAILED`, `SOURCE_RELATION_MISSING`, ...) and the driver's message with
any secret of the connection string removed: connection strings carry passwords, and
these messages end up in logs and in the runs table.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pyodbc

from shared.sql.keyset import Statement

T = TypeVar("T")
# A column's name: the type the driver gives its values as, and its scale.
ColumnTypes = dict[str, tuple[type, int | None]]

_SECRET_KEYS = {"pwd", "password", "accesstoken", "access_token", "accountkey", "sharedaccesskey"}
_PAIR = re.compile(r"([^;=]+)=(\{[^}]*\}|[^;]*)")
_DRIVER_PREFIX = re.compile(r"^(\[[^\]]*\])+\s*")

UNREACHABLE_STATES = {"08001", "08S01", "08004", "HYT00", "HYT01"}
LOGIN_FAILED_STATES = {"28000", "28P01"}
RELATION_MISSING_STATES = {"42S02", "42P01"}
COLUMN_MISSING_STATES = {"42S22", "42703"}
DRIVER_MISSING_STATES = {"IM002", "IM003"}
_LOGIN_FAILED_TEXT = ("password authentication failed", "login failed", "authentication failed",
                      "access denied")
_RELATION_MISSING_TEXT = ("no such table", "invalid object name", "does not exist")
_COLUMN_MISSING_TEXT = ("no such column", "invalid column name")


class SourceError(Exception):
    """The source database refused or failed a request; `code` says which way."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def connection_secrets(connection_string: str) -> list[str]:
    """The values of password-like keys of an ODBC connection string."""
    secrets = []
    for key, value in _PAIR.findall(connection_string or ""):
        if key.strip().lower() in _SECRET_KEYS and value.strip("{} "):
            secrets.append(value.strip("{}"))
    return secrets


def scrub(text: str, connection_string: str) -> str:
    for secret in connection_secrets(connection_string):
        text = text.replace(secret, "***")
    return text


def source_error_from(error: pyodbc.Error, connection_string: str, relation: str) -> SourceError:
    state = str(error.args[0]) if error.args else ""
    raw = str(error.args[1]) if len(error.args) > 1 else str(error)
    message = scrub(_DRIVER_PREFIX.sub("", raw.strip()), connection_string)
    lowered = message.lower()
    if state in LOGIN_FAILED_STATES or any(text in lowered for text in _LOGIN_FAILED_TEXT):
        return SourceError(
            "SOURCE_LOGIN_FAILED", f"the source database refused the login: {message}"
        )
    if state in DRIVER_MISSING_STATES or "can't open lib" in lowered:
        return SourceError(
            "SOURCE_DRIVER_MISSING", f"the ODBC driver named in the connection string is not "
            f"installed: {message}"
        )
    if state in UNREACHABLE_STATES or "could not connect" in lowered or "unable to open" in lowered:
        return SourceError("SOURCE_UNREACHABLE", f"cannot reach the source database: {message}")
    if state in COLUMN_MISSING_STATES or any(text in lowered for text in _COLUMN_MISSING_TEXT):
        return SourceError("SOURCE_COLUMN_MISSING", f"a configured column of {relation} is "
                           f"missing: {message}")
    if state in RELATION_MISSING_STATES or any(text in lowered for text in _RELATION_MISSING_TEXT):
        return SourceError("SOURCE_RELATION_MISSING", f"the view or table {relation} was not "
                           f"found: {message}")
    return SourceError("SOURCE_QUERY_FAILED", f"the source query failed ({state}): {message}")


class ConnectionCache:
    """Idle connections kept per connection string, so a page does not pay for a login.

    Logins are expensive (TLS, SCRAM/Kerberos) next to a 500-row page; activities of one
    worker process reuse connections one at a time, each taken out while in use.
    """

    def __init__(self, per_source: int = 4) -> None:
        self.per_source = per_source
        self._idle: dict[str, list[pyodbc.Connection]] = {}
        self._lock = threading.Lock()

    def take(self, connection_string: str) -> pyodbc.Connection | None:
        with self._lock:
            idle = self._idle.get(connection_string)
            return idle.pop() if idle else None

    def give_back(self, connection_string: str, connection: pyodbc.Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(connection_string, [])
            if len(idle) < self.per_source:
                idle.append(connection)
                return
        connection.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                with contextlib.suppress(pyodbc.Error):
                    connection.close()


CONNECTIONS = ConnectionCache()


class SqlSource:
    """One ODBC connection string and the relation read from it.

    Connections come from the process's `CONNECTIONS` cache; a statement that fails on a
    reused connection is tried once more on a new one, since the database may have closed
    an idle connection (restart, failover, idle timeout) without the cache knowing.
    """

    def __init__(
        self, connection_string: str, relation: str, login_timeout: int = 15,
        query_timeout: int = 120, cache: ConnectionCache | None = CONNECTIONS,
    ) -> None:
        self._connection_string = connection_string
        self.relation = relation
        self.login_timeout = login_timeout
        self.query_timeout = query_timeout
        self._cache = cache

    def __repr__(self) -> str:
        return f"SqlSource(relation={self.relation!r})"

    def _connect(self) -> pyodbc.Connection:
        try:
            connection = pyodbc.connect(
                self._connection_string, timeout=self.login_timeout, autocommit=True
            )
        except pyodbc.Error as error:
            raise source_error_from(error, self._connection_string, self.relation) from None
        # psqlODBC has no query timeout attribute; there the server's statement_timeout
        # applies.
        with contextlib.suppress(pyodbc.Error):
            connection.timeout = self.query_timeout
        return connection

    def fetch_rows(self, statement: Statement) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts keyed by column name."""
        names, rows = self.fetch_tuples(statement)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetch_tuples(self, statement: Statement) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        """Run one statement: its column names and its rows as the driver gives them
        (sequences in column order), for a caller that builds its own values per row."""
        return self._on_connection(lambda connection: self._run(connection, statement))

    def column_types(self, statement: Statement) -> ColumnTypes:
        """The columns a statement selects (a `probe_statement`: no row is read): the type
        the driver gives each one's values as (int, str, Decimal, ...) and its scale. On a
        cached connection, as every short statement: a login costs more than the query."""
        def described(connection: pyodbc.Connection) -> ColumnTypes:
            cursor = connection.cursor()
            cursor.execute(statement.sql, *statement.params)
            types = {column[0]: (column[1], column[5]) for column in cursor.description or ()}
            cursor.close()
            self._give_back(connection)
            return types

        return self._on_connection(described)

    def _on_connection(self, run: Callable[[pyodbc.Connection], T]) -> T:
        """`run` on a cached connection, else (none idle, or it failed) on a new one."""
        reused = self._cache.take(self._connection_string) if self._cache else None
        if reused is not None:
            try:
                return run(reused)
            except pyodbc.Error:
                with contextlib.suppress(pyodbc.Error):
                    reused.close()
        connection = self._connect()
        try:
            return run(connection)
        except pyodbc.Error as error:
            with contextlib.suppress(pyodbc.Error):
                connection.close()
            raise source_error_from(error, self._connection_string, self.relation) from None

    def _run(self, connection: pyodbc.Connection,
             statement: Statement) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        cursor = connection.cursor()
        cursor.execute(statement.sql, *statement.params)
        names = tuple(column[0] for column in cursor.description or ())
        rows: list[Sequence[Any]] = cursor.fetchall()
        cursor.close()
        self._give_back(connection)
        return names, rows

    def _give_back(self, connection: pyodbc.Connection) -> None:
        if self._cache is not None:
            self._cache.give_back(self._connection_string, connection)
        else:
            connection.close()

    def stream_rows(self, statement: Statement,
                    rows_per_fetch: int) -> Iterator[list[dict[str, Any]]]:
        """Run one statement and yield its rows `rows_per_fetch` at a time, never all at
        once (the driver must not buffer the result either: see its connection options).
        A connection of its own, closed at the end: the reader may stop half-way."""
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(statement.sql, *statement.params)
            names = [column[0] for column in cursor.description or ()]
            while rows := cursor.fetchmany(rows_per_fetch):
                yield [dict(zip(names, row, strict=True)) for row in rows]
        except pyodbc.Error as error:
            raise source_error_from(error, self._connection_string, self.relation) from None
        finally:
            with contextlib.suppress(pyodbc.Error):
                connection.close()

    def fetch_value(self, statement: Statement) -> Any:
        rows = self.fetch_rows(statement)
        if not rows:
            return None
        return next(iter(rows[0].values()))
