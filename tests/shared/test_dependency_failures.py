"""shared.dependency_failures: a dependency that is down or throttling is a 503 worth
waiting for, with the dependency named; anything else is a 500."""

from __future__ import annotations

import asyncio

import pyodbc
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions.models.utils import http_utils

from devhost.durable_endpoints import DurableEndpoints
from devhost.host import close_durable_client_session
from devtools.services import free_port, require_odbc_driver
from shared.dependency_failures import (
    DATABASE_UNAVAILABLE,
    DURABLE_UNAVAILABLE,
    INTERNAL_ERROR,
    SALESFORCE_UNAVAILABLE,
    STORAGE_UNAVAILABLE,
    classify_failure,
)
from shared.salesforce.errors import (
    SalesforceAuthError,
    SalesforceLimitError,
    SalesforceTransientError,
)
from shared.sql.source import SourceError

DOWN = "127.0.0.1"


def raised(call) -> BaseException:
    try:
        call()
    except Exception as error:  # the exception as the HTTP function would see it
        return error
    raise AssertionError("the call did not raise")


def test_storage_that_cannot_be_reached_is_storage_unavailable():
    port = free_port()  # nothing listens there
    table = TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"TableEndpoint=http://{DOWN}:{port}/devstoreaccount1;", "Events", retry_total=0)

    error = raised(lambda: table.get_entity("p", "r"))

    assert classify_failure(error) is STORAGE_UNAVAILABLE
    assert STORAGE_UNAVAILABLE.status == 503 and STORAGE_UNAVAILABLE.retry_after


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_storage_answering_busy_or_failing_is_storage_unavailable(status):
    error = HttpResponseError(message="Server busy")
    error.status_code = status

    assert classify_failure(error) is STORAGE_UNAVAILABLE


@pytest.mark.parametrize("status", [400, 403, 404, 409, 412])
def test_storage_refusing_the_request_is_an_internal_error(status):
    error = ResourceNotFoundError(message="The table specified does not exist")
    error.status_code = status

    assert classify_failure(error) is INTERNAL_ERROR


def test_a_database_that_cannot_be_reached_is_database_unavailable():
    require_odbc_driver("PostgreSQL Unicode", "odbc-postgresql")
    port = free_port()
    error = raised(lambda: pyodbc.connect(
        f"Driver={{PostgreSQL Unicode}};Server={DOWN};Port={port};Database=x;Uid=u;Pwd=p",
        timeout=5))

    assert isinstance(error, pyodbc.Error)
    assert classify_failure(error) is DATABASE_UNAVAILABLE


@pytest.mark.parametrize(("error", "expected"), [
    (pyodbc.OperationalError("HYT00", "[HYT00] Login timeout expired"), DATABASE_UNAVAILABLE),
    (pyodbc.Error("08S01", "[08S01] Communication link failure"), DATABASE_UNAVAILABLE),
    (pyodbc.ProgrammingError("42S02", "[42S02] Invalid object name 'x'"), INTERNAL_ERROR),
    (pyodbc.InterfaceError("IM002", "[IM002] Data source name not found"), INTERNAL_ERROR),
    (SourceError("SOURCE_UNREACHABLE", "cannot reach the source database"),
     DATABASE_UNAVAILABLE),
    (SourceError("SOURCE_RELATION_MISSING", "the view was not found"), INTERNAL_ERROR),
    (SalesforceTransientError(503, "HTTP_503", "Service Unavailable"), SALESFORCE_UNAVAILABLE),
    (SalesforceLimitError(403, "REQUEST_LIMIT_EXCEEDED", "limit"), SALESFORCE_UNAVAILABLE),
    (SalesforceAuthError(400, "invalid_grant", "authentication failure"), INTERNAL_ERROR),
    (KeyError("loadId"), INTERNAL_ERROR),
    (TimeoutError(), INTERNAL_ERROR),  # not the durable client's: nothing says which
    (Exception("The operation failed with an unexpected status code 503"), INTERNAL_ERROR),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "")
def test_each_kind_of_error_is_classified(error, expected):
    assert classify_failure(error) is expected


def test_a_durable_backend_that_cannot_be_reached_is_durable_unavailable(monkeypatch):
    # The SDK keeps one aiohttp session a process, bound to the event loop that made it;
    # one left by an earlier test's loop would fail here for that reason alone. This test's
    # loop gets its own, closed with it.
    monkeypatch.setattr(http_utils, "_client_session", None)
    port = free_port()
    endpoints = DurableEndpoints(base_url=f"http://{DOWN}:{port}/runtime/webhooks/durabletask",
                                 rpc_base_url=f"http://{DOWN}:{port}/durabletask/",
                                 hub_name="Hub", system_key="system-key")
    client = DurableOrchestrationClient(endpoints.client_binding_json({}))

    async def read_status() -> None:
        try:
            await client.get_status("event-drain")
        finally:
            await close_durable_client_session()

    error = raised(lambda: asyncio.run(read_status()))

    assert classify_failure(error) is DURABLE_UNAVAILABLE


def test_a_wrapped_dependency_failure_is_classified_by_its_cause():
    error = HttpResponseError(message="Server busy")
    error.status_code = 503

    def wrap() -> None:
        try:
            raise error
        except HttpResponseError as cause:
            raise RuntimeError("reading the depth failed") from cause

    assert classify_failure(raised(wrap)) is STORAGE_UNAVAILABLE
    assert classify_failure(raised(lambda: wrap_implicitly(error))) is STORAGE_UNAVAILABLE


def wrap_implicitly(error: BaseException) -> None:
    try:
        raise error
    except Exception:
        raise ValueError("a defect while handling it")  # noqa: B904 (the implicit chain is the case)
