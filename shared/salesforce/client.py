"""The app's Salesforce client: OAuth logins, sObject Collections upsert, Bulk API 2.0 ingest.

One `requests.Session` per client; retries for connection errors, 5xx and 429 are set in
one place (`shared.http_session.retrying_session`) with exponential backoff and a cap. A
401 `INVALID_SESSION_ID` logs in again and repeats the request once. Every Bulk API 2.0
step is its own method, so an orchestrator can put a durable timer between them; CSV goes
up and comes back as streams, never whole in memory.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Self, cast

import jwt
import requests
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse

from shared.http_session import DEFAULT_BACKOFF_MAX, CappedRetry, retrying_session
from shared.redaction import redact_secrets
from shared.salesforce.bulk_csv import (
    COLUMN_DELIMITERS,
    LINE_ENDINGS,
    MAX_UPLOAD_BYTES,
    read_ingest_csv,
    read_ingest_csv_rows,
    split_ingest_csv,
    stream_of_chunks,
)
from shared.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitError,
    SalesforceTransientError,
    error_from_body,
)

log = logging.getLogger(__name__)

GRANTS = ("client_credentials", "jwt_bearer")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
COLLECTION_CHUNK = 200
# Salesforce accepts a JWT assertion for at most 3 minutes after it was issued.
JWT_LIFETIME_SECONDS = 180
DEFAULT_MAX_RETRIES = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_TIMEOUT = 120.0
RESULT_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class SalesforceCredentials:
    """How to log in. `login_url` is the My Domain (or login/test) URL; never logged."""

    login_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    private_key_pem: str | None = field(default=None, repr=False)
    grant: str = "client_credentials"
    api_version: str = "62.0"
    audience: str | None = None

    def __post_init__(self) -> None:
        if self.grant not in GRANTS:
            raise ValueError(f"grant must be one of {', '.join(GRANTS)}, got {self.grant!r}")
        if self.grant == "client_credentials" and not self.client_secret:
            raise ValueError("the client_credentials grant needs a client secret")
        if self.grant == "jwt_bearer" and not (self.username and self.private_key_pem):
            raise ValueError("the jwt_bearer grant needs a username and a private key")


@dataclass
class RecordOutcome:
    """What happened to one record of an sObject Collections upsert, by input position."""

    index: int
    external_id: str | None
    success: bool
    id: str | None
    created: bool | None
    errors: list[tuple[str, str]]


@dataclass
class IngestJob:
    """A Bulk API 2.0 ingest job as Salesforce last reported it (`raw` has every field)."""

    id: str
    object: str
    operation: str
    state: str
    external_id_field: str | None
    number_records_processed: int
    number_records_failed: int
    error_message: str | None
    raw: dict[str, Any]

    TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> IngestJob:
        return cls(
            id=str(body["id"]),
            object=str(body.get("object", "")),
            operation=str(body.get("operation", "")),
            state=str(body.get("state", "")),
            external_id_field=body.get("externalIdFieldName"),
            number_records_processed=int(body.get("numberRecordsProcessed") or 0),
            number_records_failed=int(body.get("numberRecordsFailed") or 0),
            error_message=body.get("errorMessage") or None,
            raw=dict(body),
        )


class SalesforceRetry(CappedRetry):
    """Retries as `retrying_session` sets up, except that a request Salesforce may already
    have acted on is not sent again after a read error (the answer was lost, not the
    request): a repeated upload would be refused as a second upload, a repeated job
    creation leaves a stray job. Read errors are retried only for GET, PATCH and DELETE,
    which are safe to repeat here.
    """

    NOT_REPEATED_AFTER_READ_ERROR = frozenset({"PUT", "POST"})

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if (
            error is not None
            and method in self.NOT_REPEATED_AFTER_READ_ERROR
            and self._is_read_error(error)
        ):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class SalesforceClient:
    """A logged-in connection to one org; threads may share it (logins are serialised).

    `api_calls` counts every HTTP request sent, retries included.
    """

    def __init__(
        self,
        credentials: SalesforceCredentials,
        session: requests.Session | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.credentials = credentials
        self.session = retrying_session(
            max_retries, backoff, backoff_max, retry_class=SalesforceRetry, session=session
        )
        self.timeout = timeout
        self.api_calls = 0
        self._access_token: str | None = None
        self._instance_url: str | None = None
        self._login_lock = threading.Lock()
        self._job_delimiters: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> SalesforceClient:
        """A client from the `SalesforceSettings` section (or the whole `AppSettings`)."""
        section = getattr(settings, "salesforce", settings)
        if not section.login_url:
            raise ValueError(
                "SALESFORCE_LOGIN_URL is not set: the Salesforce sink needs the org's login URL"
            )
        credentials = SalesforceCredentials(
            login_url=section.login_url,
            client_id=section.client_id,
            client_secret=section.client_secret,
            username=section.username,
            private_key_pem=section.private_key,
            grant=section.auth_grant,
            api_version=section.api_version,
            audience=section.audience,
        )
        return cls(
            credentials,
            max_retries=section.max_retries,
            backoff=section.retry_backoff,
            timeout=section.timeout,
        )

    # -- login ------------------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        if self._instance_url is None:
            self.login()
        assert self._instance_url is not None
        return self._instance_url

    def login(self) -> None:
        """Get a new access token (and instance URL) with the configured grant."""
        creds = self.credentials
        if creds.grant == "client_credentials":
            form = {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret or "",
            }
        else:
            form = {"grant_type": JWT_BEARER_GRANT, "assertion": self._jwt_assertion()}
        url = creds.login_url.rstrip("/") + "/services/oauth2/token"
        response = self._send("POST", url, data=form, authenticated=False)
        body = _json_or_none(response)
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            code, message = self._error_from(response, body)
            if response.status_code >= 500:
                raise SalesforceTransientError(response.status_code, code, message)
            raise SalesforceAuthError(response.status_code, code, message)
        self._access_token = body["access_token"]
        self._instance_url = str(body.get("instance_url") or creds.login_url).rstrip("/")

    def _jwt_assertion(self) -> str:
        creds = self.credentials
        now = int(time.time())
        claims = {
            "iss": creds.client_id,
            "sub": creds.username,
            "aud": creds.audience or creds.login_url.rstrip("/"),
            "iat": now,
            "exp": now + JWT_LIFETIME_SECONDS,
        }
        assert creds.private_key_pem is not None  # __post_init__ requires it for this grant
        return jwt.encode(claims, creds.private_key_pem, algorithm="RS256")

    # -- HTTP -------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, authenticated: bool = True, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if authenticated:
            headers["Authorization"] = f"Bearer {self._access_token}"
            # The bearer header is the authentication: requests then skips its look for a
            # ~/.netrc entry, a file system call on every API call.
            kwargs.setdefault("auth", _headers_as_set)
        self.api_calls += 1
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.exceptions.RetryError as error:
            raise SalesforceTransientError(0, "RETRIES_EXHAUSTED", str(error)) from error
        except requests.exceptions.Timeout as error:
            raise SalesforceTransientError(0, "TIMEOUT", str(error)) from error
        except requests.exceptions.ConnectionError as error:
            raise SalesforceTransientError(0, "CONNECTION_ERROR", str(error)) from error
        retries = getattr(response.raw, "retries", None)
        if retries is not None:
            # Tries repeated inside the adapter are requests too.
            self.api_calls += len(retries.history)
        return response

    def _api_url(self, path: str) -> str:
        return f"{self.instance_url}/services/data/v{self.credentials.api_version}/{path}"

    def request(
        self,
        method: str,
        path: str,
        expected: tuple[int, ...] = (200,),
        stream: bool = False,
        body_stream: BinaryIO | Iterable[bytes] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Call the REST API (`path` below /services/data/vXX.X/); raise typed errors.

        On 401 INVALID_SESSION_ID logs in again and repeats once; a streamed body is
        rewound for that, which needs a seekable stream.
        """
        if self._access_token is None:
            with self._login_lock:
                if self._access_token is None:
                    self.login()
        seekable = getattr(body_stream, "seekable", None)
        # A body that can seek is a binary file: a repeat starts again where this one did.
        rewindable = cast(BinaryIO, body_stream) if seekable is not None and seekable() else None
        start = rewindable.tell() if rewindable is not None else None
        token_used = self._access_token
        url = self._api_url(path)
        if body_stream is not None:
            kwargs["data"] = body_stream
        response = self._send(method, url, stream=stream, **kwargs)
        if response.status_code == 401:
            response.close()
            if body_stream is not None:
                if rewindable is None or start is None:
                    raise SalesforceAuthError(
                        401, "INVALID_SESSION_ID",
                        "session expired during an upload from a stream that cannot be rewound",
                    )
                rewindable.seek(start)
            with self._login_lock:
                # Another thread may already have refreshed the token.
                if self._access_token == token_used:
                    self.login()
            response = self._send(method, url, stream=stream, **kwargs)
        if response.status_code not in expected:
            raise self._error_for(response)
        return response

    def _error_for(self, response: requests.Response) -> SalesforceError:
        body = _json_or_none(response)
        status = response.status_code
        code, message = self._error_from(response, body)
        if status == 401:
            return SalesforceAuthError(status, code, message)
        if status == 429 or code == "REQUEST_LIMIT_EXCEEDED":
            return SalesforceLimitError(status, code, message)
        if status >= 500:
            return SalesforceTransientError(status, code, message)
        return SalesforceError(status, code, message)

    def _error_from(self, response: requests.Response, body: Any) -> tuple[str, str]:
        """(errorCode, message) of an error answer, without this client's own secrets."""
        own = (self.credentials.client_secret, self.credentials.private_key_pem,
               self._access_token)
        code, message = error_from_body(
            response.status_code, body, redact_secrets(response.text[:4000], also=own)
        )
        return code, redact_secrets(message, also=own)

    # -- reads ------------------------------------------------------------------------

    def query(self, soql: str, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Records of a SOQL query, following `nextRecordsUrl` page by page."""
        response = self.request(
            "GET", "queryAll" if include_deleted else "query", params={"q": soql}
        )
        prefix = f"/services/data/v{self.credentials.api_version}/"
        while True:
            body = response.json()
            yield from body.get("records", [])
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            response = self.request("GET", next_url.removeprefix(prefix))

    def limits(self) -> dict[str, dict[str, int]]:
        """The org's limits (`DailyApiRequests`: `Max`, `Remaining`, ...)."""
        limits: dict[str, dict[str, int]] = self.request("GET", "limits").json()
        return limits

    # -- sObject Collections ------------------------------------------------------------

    def upsert_records(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool = False,
    ) -> list[RecordOutcome]:
        """Upsert by external id, 200 records a call; one outcome per input record, in order.

        With `all_or_none` each call of 200 is all-or-nothing, not the whole sequence.
        """
        outcomes: list[RecordOutcome] = []
        for start in range(0, len(records), COLLECTION_CHUNK):
            chunk = records[start : start + COLLECTION_CHUNK]
            payload = {
                "allOrNone": all_or_none,
                "records": [
                    {"attributes": {"type": sobject}, **_jsonable(record)} for record in chunk
                ],
            }
            response = self.request(
                "PATCH",
                f"composite/sobjects/{sobject}/{external_id_field}",
                json=payload,
                expected=(200,),
            )
            results = response.json()
            for offset, (record, result) in enumerate(zip(chunk, results, strict=True)):
                external_id = record.get(external_id_field)
                outcomes.append(
                    RecordOutcome(
                        index=start + offset,
                        external_id=None if external_id is None else str(external_id),
                        success=bool(result.get("success")),
                        id=result.get("id"),
                        created=result.get("created"),
                        errors=[
                            (
                                str(error.get("statusCode") or error.get("errorCode")),
                                str(error.get("message", "")),
                            )
                            for error in result.get("errors") or []
                        ],
                    )
                )
        return outcomes

    def delete_records_by_external_id(
        self, sobject: str, external_id_field: str, values: Sequence[str],
    ) -> list[RecordOutcome]:
        """Delete the records whose external id is one of `values`, 200 a call.

        Salesforce deletes by record id only: one SOQL query per 200 values finds the ids,
        one sObject Collections DELETE (not all-or-none) removes them. A value no record
        has is a success with `id` None: the record is gone either way, so a delete
        repeated after a crash changes nothing. One outcome per value, in order.
        """
        for name in (sobject, external_id_field):
            if not _API_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a Salesforce API name")
        outcomes: list[RecordOutcome] = []
        for start in range(0, len(values), COLLECTION_CHUNK):
            chunk = [str(value) for value in values[start : start + COLLECTION_CHUNK]]
            listed = ", ".join(_soql_string(value) for value in chunk)
            found: dict[str, str] = {}
            for record in self.query(f"SELECT Id, {external_id_field} FROM {sobject} "
                                     f"WHERE {external_id_field} IN ({listed})"):
                # Salesforce matches external ids without regard to case.
                found[str(record[external_id_field]).casefold()] = str(record["Id"])
            ids = list(dict.fromkeys(found[value.casefold()] for value in chunk
                                     if value.casefold() in found))
            results: dict[str, dict[str, Any]] = {}
            if ids:
                response = self.request("DELETE", "composite/sobjects",
                                        params={"ids": ",".join(ids), "allOrNone": "false"})
                results = dict(zip(ids, response.json(), strict=True))
            for offset, value in enumerate(chunk):
                record_id = found.get(value.casefold())
                result = results.get(record_id or "", {"success": True})
                errors = [(str(error.get("statusCode") or error.get("errorCode")),
                           str(error.get("message", "")))
                          for error in result.get("errors") or []]
                # Deleted since the query (by someone else, or a crash's first try): gone.
                gone = [code for code, _ in errors] == ["ENTITY_IS_DELETED"]
                outcomes.append(RecordOutcome(
                    index=start + offset, external_id=value,
                    success=bool(result.get("success")) or gone, id=record_id, created=None,
                    errors=[] if gone else errors))
        return outcomes

    # -- Bulk API 2.0 ingest ------------------------------------------------------------

    def create_ingest_job(
        self,
        sobject: str,
        operation: str,
        external_id_field: str | None = None,
        line_ending: str = "LF",
        column_delimiter: str = "COMMA",
        assignment_rule_id: str | None = None,
    ) -> IngestJob:
        if operation not in INGEST_OPERATIONS:
            raise ValueError(
                f"operation must be one of {', '.join(INGEST_OPERATIONS)}, got {operation!r}"
            )
        if (operation == "upsert") != (external_id_field is not None):
            raise ValueError("an external id field is needed for upsert, and only for upsert")
        if line_ending not in LINE_ENDINGS:
            raise ValueError(f"line_ending must be one of {', '.join(LINE_ENDINGS)}")
        if column_delimiter not in COLUMN_DELIMITERS:
            raise ValueError(f"column_delimiter must be one of {', '.join(COLUMN_DELIMITERS)}")
        body: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": line_ending,
            "columnDelimiter": column_delimiter,
        }
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        if assignment_rule_id:
            body["assignmentRuleId"] = assignment_rule_id
        response = self.request("POST", "jobs/ingest", json=body, expected=(200, 201))
        return self._job(response.json())

    def upload_job_data(self, job_id: str, csv_stream: BinaryIO | Iterable[bytes]) -> None:
        """PUT the job's CSV, streamed (a job takes one upload only, of at most 100 MB).

        `csv_stream` is a binary file-like object (sent with its length when it has one) or
        an iterable of byte chunks, such as a blob download's `chunks()` (sent chunked).
        A seekable stream can be repeated after a token refresh; an iterable cannot.
        A timeout is not retried (Salesforce may have stored the data): after a
        `SalesforceTransientError` here, abort the job and load the part into a new one.
        """
        self.request(
            "PUT",
            f"jobs/ingest/{job_id}/batches",
            headers={"Content-Type": "text/csv"},
            body_stream=csv_stream,
            expected=(201,),
        ).close()

    def close_job(self, job_id: str) -> IngestJob:
        return self._set_state(job_id, "UploadComplete")

    def abort_job(self, job_id: str) -> IngestJob:
        return self._set_state(job_id, "Aborted")

    def _set_state(self, job_id: str, state: str) -> IngestJob:
        response = self.request("PATCH", f"jobs/ingest/{job_id}", json={"state": state})
        return self._job(response.json())

    def get_job(self, job_id: str) -> IngestJob:
        return self._job(self.request("GET", f"jobs/ingest/{job_id}").json())

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"jobs/ingest/{job_id}", expected=(204,)).close()
        self._job_delimiters.pop(job_id, None)

    def list_jobs(self, is_pk_chunking_enabled: bool | None = None) -> Iterator[IngestJob]:
        """Every ingest job of the org, following `nextRecordsUrl`."""
        path: str | None = "jobs/ingest"
        while path:
            body = self.request("GET", path).json()
            for record in body.get("records", []):
                yield IngestJob.from_json(record)
            next_url = body.get("nextRecordsUrl")
            prefix = f"/services/data/v{self.credentials.api_version}/"
            path = next_url[len(prefix) :] if next_url and next_url.startswith(prefix) else None

    def successful_results(self, job_id: str) -> Iterator[dict[str, str]]:
        """Rows `sf__Id, sf__Created` + the uploaded columns; order is not the input order."""
        return self._results(job_id, "successfulResults")

    def failed_results(self, job_id: str) -> Iterator[dict[str, str]]:
        """Rows `sf__Id, sf__Error` ("CODE:message") + the uploaded columns."""
        return self._results(job_id, "failedResults")

    def unprocessed_records(self, job_id: str) -> Iterator[dict[str, str]]:
        """The uploaded rows Salesforce never got to (aborted or failed job)."""
        return self._results(job_id, "unprocessedrecords")

    def result_rows(self, job_id: str, kind: str) -> Iterator[list[str]]:
        """A result list (`successfulResults`, `failedResults`, `unprocessedrecords`) as
        lists of values, its header first (nothing when it is empty): for a caller that
        maps columns once per job instead of building a dict per row."""
        return self._results(job_id, kind, read_ingest_csv_rows)

    def _results(self, job_id: str, kind: str,
                 read: Callable[[BinaryIO, str], Iterator[Any]] = read_ingest_csv,
                 ) -> Iterator[Any]:
        delimiter = self._job_delimiters.get(job_id) or self.get_job(job_id).raw.get(
            "columnDelimiter", "COMMA"
        )
        response = self.request(
            "GET", f"jobs/ingest/{job_id}/{kind}/", stream=True, expected=(200, 204)
        )
        with response:
            if response.status_code == 204:
                return
            # iter_content, not response.raw: the same decoded bytes whatever the framing
            # (a Content-Length body closes the raw stream at its end) or the encoding.
            body = stream_of_chunks(response.iter_content(RESULT_CHUNK_BYTES))
            yield from read(body, delimiter)

    def _job(self, body: Mapping[str, Any]) -> IngestJob:
        job = IngestJob.from_json(body)
        if "columnDelimiter" in body:
            self._job_delimiters[job.id] = str(body["columnDelimiter"])
        return job

    def submit_ingest_load(
        self,
        sobject: str,
        operation: str,
        csv_stream: BinaryIO,
        external_id_field: str | None = None,
        line_ending: str = "LF",
        column_delimiter: str = "COMMA",
        max_part_bytes: int = MAX_UPLOAD_BYTES,
    ) -> list[IngestJob]:
        """Create, fill and close one job per part of a load split below the upload limit.

        Returns the closed jobs; poll them with `get_job`. A part whose upload or close
        fails has its job aborted before the error is raised, so no job is left half
        filled; parts submitted before it stay submitted. An orchestrator that must resume
        after a crash runs the steps itself (`split_ingest_csv`, then create, upload and
        close per part) and records each job id as it goes.
        """
        jobs: list[IngestJob] = []
        for _part, part_stream in split_ingest_csv(csv_stream, max_part_bytes):
            job = self.create_ingest_job(
                sobject, operation, external_id_field, line_ending, column_delimiter
            )
            try:
                self.upload_job_data(job.id, part_stream)
                jobs.append(self.close_job(job.id))
            except BaseException:
                self._abort_quietly(job.id)
                raise
        return jobs

    def _abort_quietly(self, job_id: str) -> None:
        try:
            self.abort_job(job_id)
        except SalesforceError as error:
            log.warning("could not abort ingest job %s: %s", job_id, error)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")


def _soql_string(value: str) -> str:
    """A SOQL string literal: backslash and quote escaped, as SOQL reads them."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_JSON_SCALARS = (str, float, int, bool)


def _headers_as_set(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook for a call whose Authorization header is set already."""
    return request


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe field values: dates, datetimes and decimals as Salesforce reads them."""
    from shared.salesforce.bulk_csv import format_value

    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or value.__class__ in _JSON_SCALARS or isinstance(value, _JSON_SCALARS):
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = _jsonable(value)
        else:
            out[key] = format_value(value)
    return out


_process_clients: dict[Any, SalesforceClient] = {}
_process_clients_lock = threading.Lock()


def process_client(settings: Any) -> SalesforceClient:
    """One logged-in client per org (its `SalesforceSettings`) and process.

    Activities of every capability share it, so its token and connection pool are reused: a
    client per activity would log in again each time and double the API calls.
    """
    section = getattr(settings, "salesforce", settings)
    with _process_clients_lock:
        client = _process_clients.get(section)
        if client is None:
            client = SalesforceClient.from_settings(section)
            _process_clients[section] = client
    return client
