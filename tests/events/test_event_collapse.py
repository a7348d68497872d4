"""Events for the same record collapse to the newest: by version, else arrival order."""

from __future__ import annotations

from shared.events.collapse import collapse, is_stale, replaces
from shared.events.validation import Event, Operation

UP, DEL = Operation.UPSERT, Operation.DELETE


def test_a_higher_or_equal_version_replaces_a_lower_one_never_the_reverse() -> None:
    assert replaces(5, 3) and replaces(3, 3)
    assert not replaces(2, 3)


def test_without_a_version_on_either_side_the_later_arrival_wins() -> None:
    assert replaces(None, 9) and replaces(1, None) and replaces(None, None)


def test_collapse_keeps_the_newest_event_of_each_record() -> None:
    events = [
        Event("Asset", "1", UP, None, 5), Event("Asset", "2", UP),
        Event("Asset", "1", DEL, None, 3), Event("Asset", "2", DEL),
        Event("Asset", "3", UP, '{"n":1}', 1), Event("Asset", "1", UP, '{"n":2}', 7),
    ]

    assert collapse(events) == [
        Event("Asset", "1", UP, '{"n":2}', 7), Event("Asset", "2", DEL),
        Event("Asset", "3", UP, '{"n":1}', 1),
    ]


def test_an_event_older_than_the_processed_version_is_stale() -> None:
    assert is_stale(3, 5)
    assert not is_stale(5, 5) and not is_stale(6, 5)
    assert not is_stale(None, 5) and not is_stale(3, None)
