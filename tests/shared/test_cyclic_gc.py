"""Collection paused while any thread parses records, resumed when the last one is done."""

from __future__ import annotations

import gc
import threading

from shared.cyclic_gc import collection_paused


def test_collection_is_paused_inside_and_resumed_after() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collection_resumes_only_when_the_last_thread_leaves() -> None:
    first_inside, second_may_leave, second_left = (threading.Event() for _ in range(3))
    seen: list[bool] = []

    def second() -> None:
        first_inside.wait(5)
        with collection_paused():
            second_may_leave.wait(5)
        seen.append(gc.isenabled())  # the first thread is still inside
        second_left.set()

    thread = threading.Thread(target=second)
    thread.start()
    with collection_paused():
        first_inside.set()
        second_may_leave.set()
        second_left.wait(5)
        inside = gc.isenabled()
    thread.join(5)

    assert (seen, inside, gc.isenabled()) == ([False], False, True)


def test_collection_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collection_resumes_after_an_error_inside() -> None:
    try:
        with collection_paused():
            raise ValueError("a body that is not JSON")
    except ValueError:
        pass
    assert gc.isenabled()
