"""Calls in flight (shared/sync/in_flight.py): outcomes in start order, keys never raced."""

from __future__ import annotations

import threading

import pytest

from shared.sync.in_flight import InFlight


def test_outcomes_are_taken_in_the_order_the_calls_started_whatever_order_they_end_in():
    first_may_end = threading.Event()
    ended: list[str] = []

    def call(name: str, gate: threading.Event | None = None):
        def run() -> str:
            if gate is not None:
                assert gate.wait(10)
            ended.append(name)
            return name.upper()
        return run

    with InFlight[str, str](3) as in_flight:
        in_flight.start("a", frozenset({1}), call("a", first_may_end))
        in_flight.start("b", frozenset({2}), call("b"))
        in_flight.start("c", frozenset({3}), call("c"))
        while len(ended) < 2:
            threading.Event().wait(0.01)
        assert not in_flight.oldest_done()  # b and c ended; a, the oldest, did not
        first_may_end.set()
        taken = [in_flight.take_oldest() for _ in range(3)]

    assert ended[-1] == "a"
    assert taken == [("a", "A"), ("b", "B"), ("c", "C")]


def test_a_call_waits_for_the_limit_and_for_a_call_in_flight_with_one_of_its_keys():
    release = threading.Event()

    def held() -> None:
        assert release.wait(10)

    with InFlight[str, None](2) as in_flight:
        in_flight.start("page 1", frozenset({7, 8}), held)
        assert in_flight.must_wait(frozenset({8, 9}))  # asset 8 is in flight
        assert not in_flight.must_wait(frozenset({9, 10}))
        in_flight.start("page 2", frozenset({9, 10}), held)
        assert in_flight.must_wait(frozenset({11}))  # two in flight: the limit
        release.set()
        assert in_flight.take_oldest()[0] == "page 1"
        assert not in_flight.must_wait(frozenset({8}))


def test_closing_waits_for_every_call_still_running():
    finished = threading.Event()

    def slow() -> None:
        threading.Event().wait(0.2)
        finished.set()

    in_flight = InFlight[str, None](2)
    in_flight.start("page", frozenset(), slow)
    in_flight.close()
    assert finished.is_set() and len(in_flight) == 0


def test_one_at_a_time_runs_on_the_callers_thread_and_raises_where_the_outcome_is_taken():
    threads: list[threading.Thread] = []

    def failing() -> None:
        threads.append(threading.current_thread())
        raise RuntimeError("the sink said no")

    with InFlight[str, None](1) as in_flight:
        in_flight.start("page", frozenset(), failing)
        assert threads == [threading.current_thread()] and in_flight.oldest_done()
        with pytest.raises(RuntimeError, match="the sink said no"):
            in_flight.take_oldest()


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(0)
