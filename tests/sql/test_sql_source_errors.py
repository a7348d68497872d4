"""Source failures become SourceErrors with a code and a message without secrets."""

from __future__ import annotations

import pytest

from devtools.services import free_port
from shared.sql.dialects import dialect_named
from shared.sql.keyset import KeysetSource, probe_statement
from shared.sql.source import SourceError, SqlSource, scrub


def probe(connection_string: str, relation: str, dialect: str, columns=("Asset_ID",)):
    src = KeysetSource(dialect_named(dialect), relation, "ChangeTimestamp", "timestamp",
                       ("Asset_ID",), columns)
    SqlSource(connection_string, relation, login_timeout=3).fetch_rows(probe_statement(src))


def test_missing_view_in_sqlite(sqlite_odbc):
    with pytest.raises(SourceError) as caught:
        probe(sqlite_odbc, "no_such_view", "sqlite")
    assert caught.value.code == "SOURCE_RELATION_MISSING"
    assert "no_such_view" in str(caught.value)


def test_missing_view_in_postgres(postgres):
    with pytest.raises(SourceError) as caught:
        probe(postgres.odbc_connection_string, "public.no_such_view", "postgresql")
    assert caught.value.code == "SOURCE_RELATION_MISSING"


def test_missing_column_in_postgres(postgres_assets):
    with pytest.raises(SourceError) as caught:
        probe(postgres_assets.connection_string, postgres_assets.view, "postgresql",
              ("Asset_ID", "No_Such_Column"))
    assert caught.value.code == "SOURCE_COLUMN_MISSING"


def test_bad_password_is_a_login_failure_and_the_password_is_not_shown(postgres):
    wrong = "Wr0ng-Secret-Value"
    connection_string = postgres.odbc_connection_string.replace(
        f"Pwd={postgres.password}", f"Pwd={wrong}"
    )
    with pytest.raises(SourceError) as caught:
        probe(connection_string, "public.assets", "postgresql")
    assert caught.value.code == "SOURCE_LOGIN_FAILED"
    assert wrong not in str(caught.value)


def test_database_down_is_unreachable(postgres):
    closed = postgres.odbc_connection_string.replace(
        f"Port={postgres.port}", f"Port={free_port()}"
    )
    with pytest.raises(SourceError) as caught:
        probe(closed, "public.assets", "postgresql")
    assert caught.value.code == "SOURCE_UNREACHABLE"
    assert postgres.password not in str(caught.value)


def test_missing_driver_names_the_cause():
    with pytest.raises(SourceError) as caught:
        probe("Driver={No Such ODBC Driver};Server=x;", "dbo.v", "tsql")
    assert caught.value.code == "SOURCE_DRIVER_MISSING"


def test_scrub_removes_every_password_like_value():
    connection_string = "Driver={X};Uid=sa;Pwd={p;a ss};AccessToken=tok123;"
    assert scrub("failed for p;a ss with tok123", connection_string) == "failed for *** with ***"
