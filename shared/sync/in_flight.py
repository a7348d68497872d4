"""Deliver more than one page at a time, and take their outcomes in the pages' order.

`InFlight(limit)` runs up to `limit` calls at once on threads of its own (`limit` 1: on
the caller's thread, as soon as it is started) and hands their outcomes back oldest first,
so that whoever checkpoints them does so strictly in order: a page finished before an
older one waits until the older one is taken. A call whose records share a key with a call
still in flight is not started before that one ended (`must_wait`), so two versions of one
record never race to the target and the later one stays the last written.

`take_oldest` waits for the oldest call and returns its item and outcome, or raises the
error the call raised. `close` waits for every call still running (their outcomes are
dropped: nothing is checkpointed for them), so that no call outlives its activity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Set
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class InFlight(Generic[Item, Outcome]):
    def __init__(self, limit: int, thread_name: str = "in-flight") -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._threads = (ThreadPoolExecutor(limit, thread_name_prefix=thread_name)
                         if limit > 1 else None)
        self._started: deque[tuple[Item, Set[Hashable], Future[Outcome]]] = deque()

    def __len__(self) -> int:
        return len(self._started)

    def must_wait(self, keys: Set[Hashable]) -> bool:
        """True while a call with these keys may not start yet: `limit` calls are in
        flight, or one of them has one of these keys."""
        if len(self._started) >= self.limit:
            return True
        return any(not keys.isdisjoint(other) for _item, other, _call in self._started)

    def start(self, item: Item, keys: Set[Hashable], call: Callable[[], Outcome]) -> None:
        """Start `call` for `item` (after `must_wait(keys)` said no)."""
        if self._threads is not None:
            future = self._threads.submit(call)
        else:
            future = Future()
            try:
                future.set_result(call())
            except BaseException as error:  # raised by take_oldest, as a thread's would be
                future.set_exception(error)
        self._started.append((item, keys, future))

    def oldest_done(self) -> bool:
        return bool(self._started) and self._started[0][2].done()

    def take_oldest(self) -> tuple[Item, Outcome]:
        item, _keys, future = self._started.popleft()
        return item, future.result()

    def close(self) -> None:
        calls = [future for _item, _keys, future in self._started]
        self._started.clear()
        wait(calls)
        if self._threads is not None:
            self._threads.shutdown(wait=True)

    def __enter__(self) -> InFlight[Item, Outcome]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
