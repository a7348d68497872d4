"""What the sync state stores share: the clock of their rows and how times are read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MAX_TEXT = 30_000  # a Table Storage string property holds at most 32 K characters


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: Any) -> datetime | None:
    """A stored time (datetime or ISO text) as an aware UTC datetime; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
