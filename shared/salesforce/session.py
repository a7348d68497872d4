"""The session under every Salesforce API call of the app: OAuth login, HTTP, typed errors.

One `requests.Session` per client; retries for connection errors, 5xx and 429 are set in
one place (`shared.http_session.retrying_session`) with exponential backoff and a cap. A
401 `INVALID_SESSION_ID` logs in again and repeats the request once. The API families build
on it: query.py, sobject_collections.py, bulk_ingest.py; client.py puts them together.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Self, cast

import jwt
import requests
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse

from shared.http_session import DEFAULT_BACKOFF_MAX, CappedRetry, retrying_session
from shared.redaction import redact_secrets
from shared.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitError,
    SalesforceTransientError,
    error_from_body,
)

GRANTS = ("client_credentials", "jwt_bearer")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce accepts a JWT assertion for at most 3 minutes after it was issued.
JWT_LIFETIME_SECONDS = 180
DEFAULT_MAX_RETRIES = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_TIMEOUT = 120.0


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


class SalesforceSession:
    """The login and the HTTP calls of a connection to one org, which threads may share
    (logins are serialised); `api_calls` counts every HTTP request sent, retries included.
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
        # The column delimiter of each ingest job this client created or read (bulk_ingest.py).
        self._job_delimiters: dict[str, str] = {}
        # Requests prepared once (`_send_prepared`), with their environment's settings.
        self._prepared: dict[tuple[str, str, tuple[tuple[str, str], ...]],
                             tuple[requests.PreparedRequest, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
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
            if authenticated and kwargs.keys() <= _PREPARED_ONCE_ARGUMENTS and (
                    kwargs.get("data") is None or isinstance(kwargs["data"], bytes)):
                response = self._send_prepared(method, url, headers, kwargs)
            else:
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

    def _send_prepared(self, method: str, url: str, headers: dict[str, str],
                       kwargs: dict[str, Any]) -> requests.Response:
        """Send as `Session.request` would, from a request prepared once per method, URL,
        headers and token, with what the environment sets for the URL read once.

        `Session.request` merges the session's headers, cookies, hooks and settings into
        every request anew (~0.2 ms a call: runtime protocol checks, URL parsing); an
        sObject Collections upsert sends 300 calls to one URL per 50,000 rows. A session
        that holds cookies (a server set one) is sent through `Session.request`, so that
        they go out as they are now.
        """
        session = self.session
        if session.cookies:
            return session.request(method, url, headers=headers, timeout=self.timeout,
                                   **kwargs)
        key = (method, url, tuple(headers.items()))
        found = self._prepared.get(key)
        if found is None:
            template = session.prepare_request(
                requests.Request(method, url, headers=headers, auth=kwargs.get("auth")))
            settings = session.merge_environment_settings(template.url, {}, None, None, None)
            if len(self._prepared) >= _PREPARED_KEPT:  # a new token: the old ones are stale
                self._prepared.clear()
            found = self._prepared[key] = (template, settings)
        template, settings = found
        prepared = template.copy()
        prepared.prepare_body(kwargs.get("data"), None)
        stream = kwargs.get("stream")
        return session.send(prepared, timeout=self.timeout, allow_redirects=True,
                            **{**settings, "stream": settings["stream"] if stream is None
                               else stream})

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

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# What an API call may pass to be sent from a request prepared once: a body of bytes (or
# none), headers, streaming, the auth hook `_send` sets. A call with anything else (query
# parameters, json, a file or stream body) goes through `Session.request`.
_PREPARED_ONCE_ARGUMENTS = frozenset({"data", "stream", "auth"})
_PREPARED_KEPT = 32


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _headers_as_set(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook for a call whose Authorization header is set already."""
    return request
