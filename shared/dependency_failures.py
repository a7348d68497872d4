"""What an unexpected exception of an HTTP function means for its caller.

A dependency that is down or throttling (Azure Storage, the source database, the Durable
Functions backend, Salesforce) is worth waiting for: 503 with a `Retry-After`. Anything
else is a defect or a misconfiguration that trying again does not mend: 500. The exception
itself (its text may hold a host, a connection string's values or a Durable URL) never
leaves the log; only its class name and the dependency are told.

The exception's causes count too (`raise ... from error`, or an error raised while another
was handled): a wrapper around a storage failure is still a storage failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pyodbc
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.durable import DurableBackendError
from shared.salesforce.errors import SalesforceLimitError, SalesforceTransientError
from shared.sql.source import UNREACHABLE_STATES, SourceError


@dataclass(frozen=True)
class FailureClass:
    """How an unexpected failure is answered: `cause` names the dependency for the caller;
    `retry_after` (seconds) is set when waiting helps."""

    status: int
    code: str
    title: str
    cause: str
    retry_after: int | None


STORAGE_UNAVAILABLE = FailureClass(
    503, "STORAGE_UNAVAILABLE", "Storage unavailable",
    "Azure Storage could not be reached or is throttling", 10)
DATABASE_UNAVAILABLE = FailureClass(
    503, "DATABASE_UNAVAILABLE", "Database unavailable",
    "the source database could not be reached", 30)
DURABLE_UNAVAILABLE = FailureClass(
    503, "DURABLE_UNAVAILABLE", "Durable Functions backend unavailable",
    "the Durable Functions backend could not be reached or failed the request", 10)
SALESFORCE_UNAVAILABLE = FailureClass(
    503, "SALESFORCE_UNAVAILABLE", "Salesforce unavailable",
    "Salesforce could not be reached or is limiting requests", 60)
INTERNAL_ERROR = FailureClass(
    500, "INTERNAL_ERROR", "Internal error",
    "an unexpected error; the app's log holds its details", None)

# Statuses a service answers when it is down or throttling, not when the request is wrong.
_UNAVAILABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_DURABLE_PACKAGE = "azure.durable_functions"
# The durable client raises a bare Exception with this text for a status it did not expect.
_DURABLE_STATUS = re.compile(r"unexpected status code (\d{3})")
_MAX_CAUSES = 10


def classify_failure(error: BaseException) -> FailureClass:
    """The answer to give for `error`, raised out of an HTTP function."""
    for cause in _causes(error):
        found = _dependency_failure(cause)
        if found is not None:
            return found
    return INTERNAL_ERROR


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSES:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _dependency_failure(error: BaseException) -> FailureClass | None:
    # The app's azure-core clients at request time are Azure Storage's (tables, blobs).
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return STORAGE_UNAVAILABLE
    if isinstance(error, HttpResponseError):
        return STORAGE_UNAVAILABLE if error.status_code in _UNAVAILABLE_STATUSES else None
    if isinstance(error, pyodbc.Error):
        state = str(error.args[0]) if error.args else ""
        unreachable = isinstance(error, pyodbc.OperationalError) or state in UNREACHABLE_STATES
        return DATABASE_UNAVAILABLE if unreachable else None
    if isinstance(error, SourceError):
        return DATABASE_UNAVAILABLE if error.code == "SOURCE_UNREACHABLE" else None
    if isinstance(error, DurableBackendError):
        return DURABLE_UNAVAILABLE
    if isinstance(error, (SalesforceTransientError, SalesforceLimitError)):
        return SALESFORCE_UNAVAILABLE
    if _raised_by_durable_client(error):
        return DURABLE_UNAVAILABLE if _durable_unavailable(error) else None
    return None


def _raised_by_durable_client(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(_DURABLE_PACKAGE):
            return True
        traceback = traceback.tb_next
    return False


def _durable_unavailable(error: BaseException) -> bool:
    if isinstance(error, (aiohttp.ClientError, TimeoutError)):
        return True
    if type(error) is not Exception or not error.args:
        return False
    # start_new surfaces the backend's error document for any status but 2xx and 400.
    if isinstance(error.args[0], dict):
        return True
    status = _DURABLE_STATUS.search(str(error.args[0]))
    return status is not None and int(status.group(1)) in _UNAVAILABLE_STATUSES
