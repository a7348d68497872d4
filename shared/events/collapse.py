"""Which of two events for the same object and id is the newer: by version, else arrival.

The queue keeps one event per object and id. A newcomer replaces the stored event when
both carry a version and the newcomer's is at least as high, or when either has none (then
arrival order decides, and the newcomer arrived last). The storage side (queue.py) applies
this rule under ETag conditions, so arrival order is the order of committed writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.events.validation import Event


def replaces(new_version: int | None, stored_version: int | None) -> bool:
    """Whether an event with `new_version` arriving now replaces one with `stored_version`."""
    if new_version is None or stored_version is None:
        return True
    return new_version >= stored_version


def collapse(events: Iterable[Event]) -> list[Event]:
    """The newest event of each object and id, taken in arrival (list) order."""
    newest: dict[tuple[str, str], Event] = {}
    for event in events:
        stored = newest.get(event.key)
        if stored is None or replaces(event.version, stored.version):
            newest[event.key] = event
    return list(newest.values())


def is_stale(version: int | None, processed_version: int | None) -> bool:
    """An event older than the newest version already processed for its record changes
    nothing newer: dropping it keeps a late, out-of-order event from undoing a newer one."""
    return version is not None and processed_version is not None and version < processed_version
