"""Where a page of mapped records goes: an HTTP endpoint or Salesforce sObject Collections.

A sink either accepts the page (possibly rejecting single records, which are dead-lettered
and do not block the watermark) or raises:
- `SinkUnavailable`: the whole call failed in a way that may pass (5xx, timeout, connection,
  rate limit); the run retries the page with backoff, then fails with the watermark where
  it was.
- `SinkRefused`: the whole call was refused for a reason a retry will not fix (bad
  credentials, a malformed request); the run fails at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any, Protocol

import requests
import requests.auth

from shared.http_session import RETRY_STATUSES, retrying_session
from shared.redaction import redact_secrets
from shared.salesforce import RecordOutcome
from shared.salesforce.client import COLLECTION_CHUNK
from shared.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitError,
    SalesforceTransientError,
)

log = logging.getLogger(__name__)


class SinkUnavailable(Exception):
    """The whole call failed; retrying later may work. `code` names the failure."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class SinkRefused(Exception):
    """The whole call was refused; retrying will not help until something is fixed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class RecordRejection:
    index: int  # position in the page handed to `deliver`
    code: str
    message: str


@dataclass
class Delivery:
    accepted: int
    rejections: list[RecordRejection] = field(default_factory=list)


class Sink(Protocol):
    def deliver(self, records: Sequence[Mapping[str, Any]]) -> Delivery: ...


# -- HTTP endpoint (seed 000's Process API) ------------------------------------------------


class HttpSink:
    """POSTs `{"records": [...]}` as JSON with an auth header from a secret setting.

    A 2xx answer accepts the page. If its JSON body has `errors: [{index, code, message}]`
    those records are rejected one by one. 429/5xx/timeouts are retried by the session
    (exponential backoff) and then raise SinkUnavailable; other 4xx raise SinkRefused.
    """

    def __init__(
        self, url: str, authorization: str | None, header: str = "Authorization",
        timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5,
    ) -> None:
        self.url = url
        # Messages name the endpoint without its query string, which may hold a key.
        self.display_url = url.split("?", 1)[0]
        self._authorization = authorization
        self.header = header
        self.timeout = timeout
        self.session = retrying_session(max_retries, backoff)
        # The configured header is the request's authentication: requests then skips its
        # per-request look for a ~/.netrc entry (a file system call on every page).
        self.session.auth = _HeaderAuth(header, authorization)
        _read_environment_once(self.session, url)

    def __repr__(self) -> str:
        return f"HttpSink(url={self.display_url!r})"

    def _redact(self, text: str) -> str:
        # An endpoint may echo the request, our own Authorization value included.
        return redact_secrets(text, also=(self._authorization,))

    def _describe(self, error: Exception) -> str:
        # requests' messages are long chains; the first line is what a person needs.
        text = self._redact((str(error).splitlines() or [""])[0])
        if self.url != self.display_url:
            text = text.replace(self.url.split("?", 1)[1], "...")
        return f"{self.display_url}: {text[:300]}"

    def deliver(self, records: Sequence[Mapping[str, Any]]) -> Delivery:
        # Compact UTF-8 JSON, NaN refused as requests' json= refuses it.
        body = json.dumps({"records": list(records)}, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode()
        try:
            response = self.session.post(self.url, data=body, headers=_JSON_HEADERS,
                                         timeout=self.timeout)
        except requests.exceptions.RetryError as error:
            raise SinkUnavailable(
                "HTTP_RETRIES_EXHAUSTED", self._describe(error)
            ) from None
        except requests.exceptions.Timeout:
            raise SinkUnavailable(
                "HTTP_TIMEOUT", f"{self.display_url} did not answer within {self.timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError as error:
            raise SinkUnavailable("HTTP_CONNECTION_FAILED", self._describe(error)) from None
        status = response.status_code
        if status in RETRY_STATUSES:
            raise SinkUnavailable(
                f"HTTP_{status}", f"{self.display_url} answered {status} after retries"
            )
        if not 200 <= status < 300:
            raise SinkRefused(
                f"HTTP_{status}", f"{self.display_url} refused the page: "
                f"{self._redact(response.text[:4000])[:300]}"
            )
        rejections = _rejections_from(response, len(records), self._redact)
        return Delivery(len(records) - len(rejections), rejections)


_JSON_HEADERS = {"Content-Type": "application/json"}


def _read_environment_once(session: requests.Session, url: str) -> None:
    """Take the proxies and CA bundle the environment sets for `url` (HTTPS_PROXY,
    NO_PROXY, REQUESTS_CA_BUNDLE, ...) once, as requests would for each request: it
    otherwise scans the environment and stats the bundle on every page. A plain-http URL
    keeps the default verification, which no request to it uses."""
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies = found["proxies"]
    if url.lower().startswith("https:"):
        session.verify = found["verify"]
    session.trust_env = False


class _HeaderAuth(requests.auth.AuthBase):
    """Sets the sink's authorization header (if one is configured) on each request."""

    def __init__(self, header: str, value: str | None) -> None:
        self.header, self.value = header, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.value:
            request.headers[self.header] = self.value
        return request


def _rejections_from(
    response: requests.Response, count: int, redact: Callable[[str], str]
) -> list[RecordRejection]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    rejections = []
    for item in errors or []:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        if not isinstance(index, int) or not 0 <= index < count:
            continue
        rejections.append(RecordRejection(
            index, str(item.get("code") or "REJECTED"), redact(str(item.get("message") or ""))
        ))
    return rejections


# -- Salesforce sObject Collections upsert -------------------------------------------------


class SalesforceSink:
    """Upserts by external id through sObject Collections, 200 records a call, up to
    `parallel_calls` calls at once (a page of 500 rows is 3 calls in flight together).

    A page that holds several versions of one record (a CDC-like view) is sent in rounds:
    the first version of every record, then the second, and so on (`calls_in_rounds`).
    No call names an external id twice (Salesforce would refuse both records with
    DUPLICATE_VALUE), and a later version is only sent once the round before it ended,
    so the view's last version is the one Salesforce keeps, whatever order the calls of a
    round end in. Every version is one record of the page: accepted or rejected on its own.

    The client logs in once, caches its token and logs in again on a 401; its session
    retries 5xx/429 with backoff. Per-record errors become rejections. A call that fails
    as a whole fails the page, whatever its other calls did: the page is sent again,
    which the upsert makes harmless.
    """

    def __init__(self, client: Any, sobject: str, external_id_field: str,
                 parallel_calls: int = 1) -> None:
        self.client = client
        self.sobject = sobject
        self.external_id_field = external_id_field
        self.parallel_calls = parallel_calls
        self._calls = (ThreadPoolExecutor(parallel_calls, thread_name_prefix="collections")
                       if parallel_calls > 1 else None)

    def __repr__(self) -> str:
        return f"SalesforceSink(sobject={self.sobject!r})"

    def deliver(self, records: Sequence[Mapping[str, Any]]) -> Delivery:
        answers: list[tuple[list[int], list[RecordOutcome]]] = []
        try:
            for calls in calls_in_rounds(records, self.external_id_field):
                if self._calls is None or len(calls) == 1:
                    answers += [self._upsert(records, indexes) for indexes in calls]
                else:
                    answers += self._calls.map(partial(self._upsert, records), calls)
        except (SalesforceTransientError, SalesforceLimitError) as error:
            raise SinkUnavailable(error.error_code, f"Salesforce: {error.message}") from None
        except SalesforceAuthError as error:
            raise SinkRefused(error.error_code, f"Salesforce login: {error.message}") from None
        except SalesforceError as error:
            raise SinkRefused(error.error_code, f"Salesforce: {error.message}") from None
        rejections = sorted((
            RecordRejection(
                indexes[outcome.index],
                outcome.errors[0][0] if outcome.errors else "UNKNOWN_ERROR",
                "; ".join(message for _code, message in outcome.errors) or "rejected",
            )
            for indexes, failures in answers
            for outcome in failures
        ), key=attrgetter("index"))
        return Delivery(len(records) - len(rejections), rejections)

    def _upsert(self, records: Sequence[Mapping[str, Any]], indexes: list[int]
                ) -> tuple[list[int], list[RecordOutcome]]:
        """The outcomes of one call's failed records, indexed in the call, and the page
        index of each of its records."""
        if len(indexes) == indexes[-1] - indexes[0] + 1:  # a run of the page: no copy
            call: Sequence[Mapping[str, Any]] = records[indexes[0]:indexes[-1] + 1]
        else:
            call = [records[index] for index in indexes]
        return indexes, self.client.upsert_failures(
            self.sobject, self.external_id_field, call, all_or_none=False)


def calls_in_rounds(records: Sequence[Mapping[str, Any]],
                    external_id_field: str) -> list[list[list[int]]]:
    """The page indexes of each sObject Collections call, in rounds sent one after the
    other: round n holds the (n+1)th version of each external id in the page (in page
    order), cut in calls of up to 200. A page without repeated external ids is one round.
    External ids are compared as Salesforce compares them by default: as text, ignoring
    case. A record without one is in the first round (Salesforce refuses it on its own).
    """
    keys = [str(value).casefold() for record in records
            if (value := record.get(external_id_field)) is not None]
    if len(set(keys)) == len(keys):  # no repeated external id (the usual page): one round
        return [[list(range(start, min(start + COLLECTION_CHUNK, len(records))))
                 for start in range(0, len(records), COLLECTION_CHUNK)]] if records else []
    versions: dict[str, int] = {}
    rounds: list[list[int]] = [[]]
    for index, record in enumerate(records):
        value = record.get(external_id_field)
        if value is None:
            rounds[0].append(index)
            continue
        key = str(value).casefold()
        version = versions.get(key, 0)
        versions[key] = version + 1
        if version == len(rounds):
            rounds.append([])
        rounds[version].append(index)
    return [[indexes[start:start + COLLECTION_CHUNK]
             for start in range(0, len(indexes), COLLECTION_CHUNK)]
            for indexes in rounds if indexes]
