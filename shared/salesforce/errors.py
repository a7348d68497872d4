"""Typed Salesforce errors carrying Salesforce's own `errorCode` and message.

Salesforce answers errors as a JSON array `[{"message", "errorCode", "fields"}]` (REST) or
an OAuth object `{"error", "error_description"}`; callers branch on the exception type and
log `str(error)`, which reads `CODE: message`.
"""

from __future__ import annotations

from typing import Any

from shared.redaction import redact_secrets


class SalesforceError(Exception):
    """Salesforce refused a request; `error_code` is its errorCode (or OAuth `error`)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        self.status = status
        self.error_code = error_code
        # The message travels to run records, logs and answers: no secret goes with it.
        self.message = redact_secrets(message)
        super().__init__(f"{error_code}: {self.message}")

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


class SalesforceAuthError(SalesforceError):
    """Login failed, or the session was still invalid after one token refresh."""


class SalesforceLimitError(SalesforceError):
    """REQUEST_LIMIT_EXCEEDED, or 429 still answered after the retries ran out."""


class SalesforceTransientError(SalesforceError):
    """5xx or a connection error still happening after the retries ran out."""


def error_from_body(status: int, body: Any, fallback: str = "") -> tuple[str, str]:
    """(errorCode, message) from any of Salesforce's error body shapes."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return str(first.get("errorCode", "UNKNOWN_ERROR")), str(first.get("message", ""))
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"]), str(body.get("error_description", ""))
        if "errorCode" in body:
            return str(body["errorCode"]), str(body.get("message", ""))
    return f"HTTP_{status}", fallback.strip()[:500] or f"HTTP status {status}"
