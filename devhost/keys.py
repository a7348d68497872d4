"""Function, master and system keys, and the auth-level check of HTTP requests.

As in Azure: anonymous needs no key; function level accepts the function key or the
master key; admin accepts only the master key. A key comes in the `code` query parameter
or the `x-functions-key` header. Keys are generated at start-up unless the app settings
DEVHOST_MASTER_KEY / DEVHOST_FUNCTION_KEY fix them (tests and scripts do).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

MASTER_KEY_SETTING = "DEVHOST_MASTER_KEY"
FUNCTION_KEY_SETTING = "DEVHOST_FUNCTION_KEY"

ANONYMOUS = "anonymous"
FUNCTION = "function"
ADMIN = "admin"


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def _matches_any(presented: str, keys: list[str]) -> bool:
    """Constant-time comparison of bytes: `hmac.compare_digest` refuses non-ASCII text,
    and a key may hold any character (lone surrogates included)."""
    given = presented.encode("utf-8", "surrogatepass")
    return any(hmac.compare_digest(given, key.encode("utf-8", "surrogatepass")) for key in keys)


@dataclass(frozen=True)
class HostKeys:
    master: str
    function: str
    durable_extension: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> HostKeys:
        environ = os.environ if environ is None else environ
        return cls(
            master=environ.get(MASTER_KEY_SETTING) or _new_key(),
            function=environ.get(FUNCTION_KEY_SETTING) or _new_key(),
            durable_extension=_new_key(),
        )

    def allows(
        self, auth_level: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> bool:
        level = auth_level.lower()
        if level == ANONYMOUS:
            return True
        presented = headers.get("x-functions-key") or query.get("code") or ""
        accepted = [self.master] if level == ADMIN else [self.master, self.function]
        return _matches_any(presented, accepted)

    def allows_durable_api(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        """The built-in durable API takes the extension's system key or the master key."""
        presented = headers.get("x-functions-key") or query.get("code") or ""
        return _matches_any(presented, [self.master, self.durable_extension])
