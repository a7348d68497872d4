"""The one place where outgoing HTTP retries are configured (Salesforce client, HTTP sink).

`retrying_session` mounts an `HTTPAdapter` whose `urllib3.Retry` repeats connection
errors, 429 and 5xx with exponential backoff (`backoff` * 2^n, capped at `backoff_max`, or
the server's Retry-After up to the same cap). After the last try the final response is
returned, not raised, so the caller can read its body and raise its own typed error.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_BACKOFF_MAX = 30.0


class CappedRetry(Retry):
    """urllib3's Retry with a server's Retry-After honoured only up to `backoff_max`."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, self.backoff_max)


def retrying_session(
    max_retries: int,
    backoff: float,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    *,
    retry_class: type[CappedRetry] = CappedRetry,
    session: requests.Session | None = None,
) -> requests.Session:
    """A session (`session`, or a new one) that retries as described above.

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
    session = session or requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
