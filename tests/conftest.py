"""Real local services for the tests, started once per session on free loopback ports.

A test that needs a service asks for its fixture; when the service cannot start the
fixture raises, so the test errors with the reason instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import services


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Azurite]:
    workdir = tmp_path_factory.mktemp("azurite")
    service = services.start_azurite(workdir, log_file=workdir / "azurite.log")
    yield service
    service.stop(grace_seconds=1.0)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Postgres]:
    services.require_odbc_driver("PostgreSQL Unicode", "odbc-postgresql")
    log_file = tmp_path_factory.mktemp("postgres") / "postgres.log"
    service = services.start_postgres(log_file=log_file)
    yield service
    service.stop()


@pytest.fixture
def sqlite_odbc(tmp_path: Path) -> str:
    services.require_odbc_driver("SQLite3", "libsqliteodbc")
    return services.sqlite_odbc_connection_string(tmp_path / "source.db")
