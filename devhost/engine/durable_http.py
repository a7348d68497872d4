"""The Durable extension's built-in HTTP activity, which carries out `context.call_http`.

The extension runs a durable HTTP call as an activity named `BuiltIn::HttpActivity`: its
input is the SDK's `httpRequest` (`method, uri, content, headers, tokenSource`), its result
the extension's `DurableHttpResponse` serialised as `{"statusCode": <int>, "headers":
{name: value or [values]}, "content": <text>}`, which the Python SDK hands the
orchestrator as a dict. Any status code is a result, not a failure; only a request that
gets no answer (refused connection, timeout, no token) fails the task.

The Python SDK 1.x sends no `asynchronousPatternEnabled`, so the extension does not poll
`202 Accepted` answers for Python apps (azure-functions-durable-python issue 380): the
202 reaches the orchestrator as it came, here too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("devhost.durable")

HTTP_ACTIVITY = "BuiltIn::HttpActivity"
# HttpClient's default timeout, which the extension's durable HTTP client keeps.
REQUEST_TIMEOUT_SECONDS = 100
MANAGED_IDENTITY_KIND = "AzureManagedIdentity"


class DurableHttpError(Exception):
    """The request could not be made as the orchestrator described it."""


def _header_items(headers: Any) -> list[tuple[str, str]]:
    """The SDK sends `{name: value}`; the extension also accepts `{name: [values]}`."""
    if not headers:
        return []
    if not isinstance(headers, dict):
        raise DurableHttpError(f"httpRequest.headers must be an object, got {headers!r}")
    items: list[tuple[str, str]] = []
    for name, value in headers.items():
        values = value if isinstance(value, list) else [value]
        items += [(str(name), str(one)) for one in values if one is not None]
    return items


def _response_headers(response: aiohttp.ClientResponse) -> dict[str, str | list[str]]:
    """One string per header, or a list when it came more than once (as the extension's
    HttpHeadersConverter writes them)."""
    grouped: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def _scope(resource: str) -> str:
    """An Azure AD resource id (`https://management.core.windows.net/`) as a token scope."""
    return resource.rstrip("/") + "/.default"


class DurableHttpClient:
    """Makes durable HTTP calls; one session and one credential for the engine's lifetime."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._credential: Any = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._credential is not None:
            await self._credential.close()
            self._credential = None

    async def _token(self, token_source: dict[str, Any]) -> str:
        kind = token_source.get("kind")
        resource = token_source.get("resource")
        if kind != MANAGED_IDENTITY_KIND or not resource:
            raise DurableHttpError(f"unsupported httpRequest.tokenSource {token_source!r}")
        if self._credential is None:
            # Azure uses the app's managed identity; on a laptop the developer's identity
            # (environment, managed identity, az login, ...) stands in for it.
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        try:
            token = await self._credential.get_token(_scope(str(resource)))
        except Exception as error:
            raise DurableHttpError(
                f"no token for resource {resource!r} (DefaultAzureCredential): {error}"
            ) from error
        return str(token.token)

    async def send(self, request_json: str | None) -> str:
        """Make the call described by `request_json`; return the response as JSON text."""
        try:
            request = json.loads(request_json or "null")
        except ValueError as error:
            raise DurableHttpError(f"httpRequest is not JSON: {error}") from error
        if not isinstance(request, dict) or not request.get("method") or not request.get("uri"):
            raise DurableHttpError("httpRequest needs a method and a uri")
        method = str(request["method"]).upper()
        uri = str(request["uri"])
        headers = _header_items(request.get("headers"))
        if request.get("tokenSource"):
            token = await self._token(request["tokenSource"])
            headers = [(n, v) for n, v in headers if n.lower() != "authorization"]
            headers.append(("Authorization", f"Bearer {token}"))
        content = request.get("content")
        data = None
        if content is not None:
            data = str(content).encode("utf-8")
            if not any(name.lower() == "content-type" for name, _ in headers):
                # .NET's StringContent, which the extension sends, says this by default.
                headers.append(("Content-Type", "text/plain; charset=utf-8"))
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            )
        started = time.perf_counter()
        async with self._session.request(
            method, uri, data=data, headers=headers, allow_redirects=True
        ) as response:
            text = await response.text(errors="replace")
            answer = {
                "statusCode": response.status,
                "headers": _response_headers(response),
                "content": text,
            }
        parts = urlsplit(uri)  # the query may carry keys: it stays out of the log
        log.info(
            "Durable HTTP %s %s://%s%s -> %d (%dms)", method, parts.scheme, parts.netloc,
            parts.path, response.status, round((time.perf_counter() - started) * 1000),
        )
        return json.dumps(answer)
