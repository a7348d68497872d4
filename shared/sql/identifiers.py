"""Identifiers that come from configuration: validated, then quoted per dialect.

Values are always bound as parameters; only identifiers (schema, view, column names) are
written into SQL text, and only after they passed `validate_identifier`.
"""

from __future__ import annotations

import re

# Letters, digits, underscore and $ (SQL Server and PostgreSQL both allow it after the
# first character); nothing that could close a quote or start a comment.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,127}")


class InvalidIdentifier(ValueError):
    """A configured schema, view or column name is not a plain SQL identifier."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifier(
            f"{what} {name!r} is not a plain SQL identifier: use letters, digits, _ or $, "
            "starting with a letter or _, at most 128 characters"
        )
    return name


def split_qualified_name(name: str, what: str = "view or table") -> tuple[str, ...]:
    """`dbo.Assets_V` -> ('dbo', 'Assets_V'); every part validated. At most schema.object."""
    parts = tuple(name.split(".")) if isinstance(name, str) else ()
    if not 1 <= len(parts) <= 2:
        raise InvalidIdentifier(f"{what} {name!r} must be `object` or `schema.object`")
    return tuple(validate_identifier(part, what) for part in parts)
