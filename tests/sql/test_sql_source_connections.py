"""One login per process: statements reuse idle connections, and one the server closed
while it was idle is replaced without the caller seeing an error."""

from __future__ import annotations

import pyodbc
import pytest

from shared.sql.keyset import Statement
from shared.sql.source import ConnectionCache, SourceError, SqlSource

BACKEND = Statement("SELECT pg_backend_pid()", ())


def test_statements_of_one_process_share_one_login(postgres):
    source = SqlSource(postgres.odbc_connection_string, "t", cache=ConnectionCache())
    assert source.fetch_value(BACKEND) == source.fetch_value(BACKEND)


def test_a_connection_closed_by_the_server_while_idle_is_replaced(postgres):
    source = SqlSource(postgres.odbc_connection_string, "t", cache=ConnectionCache())
    first = source.fetch_value(BACKEND)
    with pyodbc.connect(postgres.odbc_connection_string, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(?)", first).fetchval()

    second = source.fetch_value(BACKEND)

    assert second != first
    assert source.fetch_value(BACKEND) == second  # the new one is kept in turn


def test_a_failing_statement_on_a_reused_connection_is_still_reported(postgres):
    source = SqlSource(postgres.odbc_connection_string, "public.no_such_view",
                       cache=ConnectionCache())
    source.fetch_value(BACKEND)
    with pytest.raises(SourceError) as caught:
        source.fetch_rows(Statement("SELECT 1 FROM public.no_such_view", ()))
    assert caught.value.code == "SOURCE_RELATION_MISSING"
    assert source.fetch_value(BACKEND) is not None


def test_column_types_are_asked_on_the_login_the_statements_share(postgres):
    cache = ConnectionCache()
    source = SqlSource(postgres.odbc_connection_string, "t", cache=cache)

    types = source.column_types(Statement("SELECT 1::bigint AS id, 'a'::text AS name", ()))

    assert types["id"][0] is int and types["name"][0] is str
    # Its login is kept for the next statement, as a statement's is.
    kept = cache.take(postgres.odbc_connection_string)
    assert kept is not None
    cache.give_back(postgres.odbc_connection_string, kept)
    first = source.fetch_value(BACKEND)
    source.column_types(Statement("SELECT 1 AS id", ()))
    assert source.fetch_value(BACKEND) == first


def test_column_types_of_a_missing_relation_are_reported_on_a_reused_connection(postgres):
    source = SqlSource(postgres.odbc_connection_string, "public.no_such_view",
                       cache=ConnectionCache())
    source.fetch_value(BACKEND)
    with pytest.raises(SourceError) as caught:
        source.column_types(Statement("SELECT * FROM public.no_such_view WHERE 1 = 0", ()))
    assert caught.value.code == "SOURCE_RELATION_MISSING"
    assert source.fetch_value(BACKEND) is not None
