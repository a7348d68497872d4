"""Secrets out of error texts, before they reach storage, logs or answers.

An error text can carry what a remote server echoed back: a 4xx body that repeats the
request's headers holds our own `Authorization` value. `redact_secrets` replaces

- every configured secret value: `shared.config.app_settings()` remembers the values of
  the settings declared `secret=True`, and a caller adds the secrets it holds itself
  (`also`), such as a client's access token;
- anything shaped like a credential: an Authorization header, a bearer token, a JWT, a
  SAS `sig=`, an `AccountKey=`, a `password=`/`Pwd=`, an OAuth `client_secret=`.

Redact the whole text before cutting it short: a cut can split a secret so that its
remaining part no longer matches.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
# A configured secret shorter than this is not searched for: it would blank out ordinary
# words and numbers, and the patterns below still catch it in a credential's shape.
MIN_SECRET_LENGTH = 4

_HEADER_NAMES = r"(?:proxy-)?authorization|x-api-key|api[-_]?key|x-functions-key"
_VALUE_NAMES = (
    r"sig|accountkey|sharedaccesskey|password|pwd|client_secret|access_token|refresh_token"
    r"|assertion"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization": "Bearer ..." (JSON, a Python repr) and "password": "..."
    (re.compile(rf"""(?i)(["'])({_HEADER_NAMES}|{_VALUE_NAMES})\1(\s*:\s*)(["'])"""
                r"""(?:\\.|(?!\4).)*\4"""),
     rf"\1\2\1\3\4{REDACTED}\4"),
    # Authorization: Bearer ... (a header line, up to the end of the line)
    (re.compile(rf"(?i)(?<![\w-])({_HEADER_NAMES})(\s*[:=]\s*)[^\"'\r\n]+"),
     rf"\1\2{REDACTED}"),
    # AccountKey=...; sig=...& password=...
    (re.compile(rf"(?i)(?<![\w-])({_VALUE_NAMES})=[^&;\s\"',]+"), rf"\1={REDACTED}"),
    # Bearer 00D...!AQ... (a token is at least 8 characters: "bearer token" is prose)
    (re.compile(r"(?i)\b(bearer)\s+[\w\-.~+/!]{8,}=*"), rf"\1 {REDACTED}"),
    (re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), REDACTED),
)

_known_secrets: set[str] = set()
_known_secrets_lock = threading.Lock()


def remember_secrets(values: Iterable[str | None]) -> None:
    """Redact these values from every error text of this process from now on."""
    with _known_secrets_lock:
        _known_secrets.update(_searchable(values))


def redact_secrets(text: str, also: Iterable[str | None] = ()) -> str:
    """`text` with every remembered secret, every secret in `also` and every
    credential-shaped value replaced by [redacted]."""
    with _known_secrets_lock:
        secrets = _known_secrets | _searchable(also)
    # Longest first, so that a secret containing another is replaced whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _searchable(values: Iterable[str | None]) -> set[str]:
    found = set()
    for value in values:
        if not value or len(value.strip()) < MIN_SECRET_LENGTH:
            continue
        found.add(value)
        found.add(value.strip())
        # The same value as a JSON body quotes it (an echo may escape / or ").
        found.add(json.dumps(value)[1:-1])
        found.add(json.dumps(value, ensure_ascii=False)[1:-1].replace("/", "\\/"))
        # A multi-line value (a PEM key) is searched line by line as well.
        found.update(line.strip() for line in value.splitlines()
                     if len(line.strip()) >= MIN_SECRET_LENGTH and "-----" not in line)
    return found
