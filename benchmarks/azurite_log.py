"""The storage requests Azurite logged (its access log), for benchmarks that count them."""

from __future__ import annotations

import re
from pathlib import Path

# A request line of Azurite's access log: its method and the first path segment after the
# account (a table, a table's row, `$batch`, or a blob container).
ACCESS_LINE = re.compile(r'"(GET|PUT|POST|PATCH|DELETE|MERGE|HEAD) /devstoreaccount1/([^/?( "]*)')


def logged_requests(log: Path, offset: int) -> tuple[list[tuple[str, str]], int]:
    """(method, first path segment) of each request logged since `offset`; the new offset."""
    with open(log, "rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
        end = file.tell()
    return ACCESS_LINE.findall(text), end
