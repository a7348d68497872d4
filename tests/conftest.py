"""Real local services for the tests, started once per session on free loopback ports.

A test that needs a service asks for its fixture; when the service cannot start the
fixture raises, so the test errors with the reason instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import services
from sfsim.settings import SimSettings
from sfsim.testing import SimulatorHandle, start_simulator
from tests.sync.sources import AssetSource, create_asset_source

# Fast job state steps keep the suite quick; tests that need slower jobs configure it.
SFSIM_TEST_SETTINGS = {"job_delay_seconds": 0.02}


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


@pytest.fixture
def sqlite_assets(sqlite_odbc: str) -> AssetSource:
    """Seed 000's asset changes view in a fresh SQLite database."""
    return create_asset_source(sqlite_odbc, "sqlite")


@pytest.fixture
def postgres_assets(postgres: services.Postgres) -> AssetSource:
    """Seed 000's asset changes view in a fresh PostgreSQL database."""
    return create_asset_source(postgres.odbc_connection_string, "postgresql")


# -- the Salesforce simulator: one server per session, a fresh org per test ------------


@pytest.fixture(scope="session")
def sfsim_server() -> Iterator[SimulatorHandle]:
    handle = start_simulator(SimSettings(**SFSIM_TEST_SETTINGS))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def sfsim_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorHandle]:
    """The simulator over HTTPS, for clients that only speak https (simple-salesforce)."""
    handle = start_simulator(
        SimSettings(**SFSIM_TEST_SETTINGS), tls=True,
        tls_dir=tmp_path_factory.mktemp("sfsim-tls"),
    )
    yield handle
    handle.stop()


@pytest.fixture
def sfsim(sfsim_server: SimulatorHandle) -> SimulatorHandle:
    """The simulator with its org just reset and its settings back to the session's."""
    sfsim_server.reset()
    return sfsim_server


@pytest.fixture
def sfsim_tls(sfsim_tls_server: SimulatorHandle) -> SimulatorHandle:
    sfsim_tls_server.reset()
    return sfsim_tls_server
