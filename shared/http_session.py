"""The one place where outgoing HTTP retries are configured (Salesforce client, HTTP sink).

`retrying_session` mounts an `HTTPAdapter` whose `urllib3.Retry` repeats connection
errors, 429 and 5xx with exponential backoff (`backoff` * 2^n, capped at `backoff_max`, or
the server's Retry-After up to the same cap). After the last try the final response is
returned, not raised, so the caller can read its body and raise its own typed error.

The session it makes reads the environment's proxies and CA bundle once per origin
(`EnvironmentOnceSession`), not on every request as requests does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from requests.sessions import _Settings

RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_BACKOFF_MAX = 30.0


class CappedRetry(Retry):
    """urllib3's Retry with a server's Retry-After honoured only up to `backoff_max`."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, self.backoff_max)


class EnvironmentOnceSession(requests.Session):
    """A session that takes the proxies (HTTPS_PROXY, NO_PROXY, ...) and the CA bundle
    (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) the environment sets for a URL's origin once,
    then reuses them for every request to that origin, exactly as requests would find
    them each time. requests otherwise scans the whole environment on every request:
    0.1-0.2 ms with a Functions app's ~100 settings, 300 times per 50,000 rows sent by
    sObject Collections. An app's environment does not change while its worker runs: a
    settings change restarts the worker.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str, str | None],
                                tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> _Settings:
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        found = self._environment.get(key)
        if found is None:  # two threads may both look once: the same answer either way
            found = self._environment[key] = (
                get_environ_proxies(url, no_proxy=no_proxy),
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        environment_proxies, bundle = found
        if proxies is not None:
            for scheme, proxy in environment_proxies.items():
                proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = bundle or verify
        merged = cast(Callable[[Any, Any], Any], merge_setting)  # untyped in the stubs
        return {"proxies": merged(proxies, self.proxies), "stream": merged(stream, self.stream),
                "verify": merged(verify, self.verify), "cert": merged(cert, self.cert)}


def retrying_session(
    max_retries: int,
    backoff: float,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    *,
    retry_class: type[CappedRetry] = CappedRetry,
    session: requests.Session | None = None,
) -> requests.Session:
    """A session (`session`, or a new `EnvironmentOnceSession`) that retries as described
    above.

    Statuses are retried for every method: the servers this app calls answer 429/503
    before doing any work. `retry_class` narrows what is repeated (the Salesforce client
    does not resend an upload whose answer was lost).
    """
    retry = retry_class(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        allowed_methods=None,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = session or EnvironmentOnceSession()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
