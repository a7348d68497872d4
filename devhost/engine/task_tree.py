"""The tasks the extension's shim awaits, as a tree, with .NET's completion rules.

A leaf is one scheduled call (activity, timer, sub-orchestration) or one event wait;
`WhenAll`/`WhenAny` are .NET's `Task.WhenAll`/`Task.WhenAny` over their children;
`RetryInterceptor` is DTFx's: an attempt, then a timer, then the next attempt or give up.
A node tells its parent, then its `on_done` hook, when it finishes.

Pure: no I/O, no clock (a retry asks its `TimerSource` for the replay's time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol


class OrchestrationRuleBroken(Exception):
    """The SDK's actions cannot be carried out; the orchestration fails with this message."""


class TimerSource(Protocol):
    """What a retry needs of the replay: its current time and a new durable timer."""

    now: datetime | None

    def new_timer(self, fire_at: datetime) -> Leaf: ...


class TaskNode:
    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self.parent: TaskNode | None = None
        self.on_done: Callable[[TaskNode], None] | None = None

    def finish(self, failed: bool) -> None:
        if self.done:
            return
        self.done = True
        self.failed = failed
        if self.parent is not None:
            self.parent.child_done(self)
        if self.on_done is not None:
            self.on_done(self)

    def child_done(self, child: TaskNode) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class Leaf(TaskNode):
    def __init__(self, task_id: int | None) -> None:
        super().__init__()
        self.task_id = task_id


class WhenAll(TaskNode):
    def __init__(self, children: list[TaskNode]) -> None:
        super().__init__()
        self.children = children
        for child in children:
            child.parent = self
        self._check()

    def _check(self) -> None:
        if all(child.done for child in self.children):
            self.finish(any(child.failed for child in self.children))

    def child_done(self, child: TaskNode) -> None:
        self._check()


class WhenAny(TaskNode):
    def __init__(self, children: list[TaskNode]) -> None:
        super().__init__()
        self.children = children
        for child in children:
            child.parent = self
        if any(child.done for child in children) or not children:
            self.finish(False)

    def child_done(self, child: TaskNode) -> None:
        self.finish(False)


@dataclass
class RetryPolicy:
    first_interval: timedelta
    max_attempts: int
    backoff: float = 1.0
    max_interval: timedelta | None = None
    timeout: timedelta | None = None

    @classmethod
    def from_action(cls, options: dict[str, Any]) -> RetryPolicy:
        def millis(name: str) -> timedelta | None:
            value = options.get(name)
            return None if value is None else timedelta(milliseconds=float(value))

        first = millis("firstRetryIntervalInMilliseconds")
        if first is None or first <= timedelta(0):
            raise OrchestrationRuleBroken(
                "retryOptions.firstRetryIntervalInMilliseconds must be > 0"
            )
        return cls(
            first_interval=first,
            max_attempts=int(options.get("maxNumberOfAttempts") or 1),
            backoff=float(options.get("backoffCoefficient") or 1.0),
            max_interval=millis("maxRetryIntervalInMilliseconds"),
            timeout=millis("retryTimeoutInMilliseconds"),
        )

    def next_delay(self, attempt: int, first_attempt: datetime, now: datetime) -> timedelta:
        """DTFx RetryInterceptor.ComputeNextDelay: zero means give up."""
        if self.timeout is not None and now >= first_attempt + self.timeout:
            return timedelta(0)
        delay = self.first_interval * (self.backoff**attempt)
        if self.max_interval is not None and delay > self.max_interval:
            delay = self.max_interval
        return delay


class RetryInterceptor(TaskNode):
    """RetryInterceptor: attempt; on failure a timer, then the next attempt or give up."""

    def __init__(
        self, replayer: TimerSource, make_attempt: Callable[[], Leaf], policy: RetryPolicy
    ) -> None:
        super().__init__()
        self.replayer = replayer
        self.make_attempt = make_attempt
        self.policy = policy
        self.attempt = 0
        self.first_attempt = replayer.now
        self.waiting_timer = False
        self._start_attempt()

    def _start_attempt(self) -> None:
        child = self.make_attempt()
        child.parent = self

    def child_done(self, child: TaskNode) -> None:
        if self.waiting_timer:
            self.waiting_timer = False
            self.attempt += 1
            if self.attempt < self.policy.max_attempts:
                self._start_attempt()
            else:
                self.finish(True)
            return
        if not child.failed:
            self.finish(False)
            return
        now = self.replayer.now
        # The walk starts at ExecutionStarted, which sets the clock: attempts have a time.
        assert now is not None and self.first_attempt is not None
        delay = self.policy.next_delay(self.attempt, self.first_attempt, now)
        if delay <= timedelta(0):
            self.finish(True)
            return
        self.waiting_timer = True
        timer = self.replayer.new_timer(now + delay)
        timer.parent = self
