"""The leading host's view of the messages not yet applied, its timers and its ready list.

Messages live in the store; the leader keeps them in memory per instance, wakes an
instance when one is due (timers at their fire time), and forgets them once applied.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from devhost.engine.lease import TaskHubLease
from devhost.engine.messages import utcnow
from devhost.engine.rows import StoredMessage
from devhost.engine.store import TaskHubStore

log = logging.getLogger("devhost.engine")

APPLIED_MEMORY_SECONDS = 60


class Inbox:
    def __init__(self, store: TaskHubStore, lease: TaskHubLease) -> None:
        self._store = store
        self._lease = lease
        self.background: set[asyncio.Task[Any]] = set()
        self._settling: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.reset()

    def reset(self) -> None:
        """Start over as a new leader (what is stored is loaded again)."""
        self._messages: dict[str, dict[str, StoredMessage]] = {}
        self._timers: list[tuple[datetime, str, str]] = []
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._again: set[str] = set()
        self.wakeup = asyncio.Event()
        # Keys of messages applied here lately: a poll that read them before their rows
        # were deleted must not bring them back.
        self._applied: dict[tuple[str, str], float] = {}
        self._settling = {}

    # -- arriving --

    def add(self, message: StoredMessage) -> None:
        self._messages.setdefault(message.instance_id, {})[message.key] = message
        if message.visible_at <= utcnow():
            self.notify(message.instance_id)
        else:
            heapq.heappush(self._timers, (message.visible_at, message.instance_id, message.key))
            self.wakeup.set()

    def add_if_leading(self, message: StoredMessage) -> None:
        if self._lease.held:
            self.add(message)

    async def send(self, message: StoredMessage) -> None:
        await self._store.queue.send_message(message)
        self.add_if_leading(message)

    async def pick_up_stored(self) -> None:
        """Add messages that other hosts wrote since the last look."""
        forget_before = time.monotonic() - APPLIED_MEMORY_SECONDS
        self._applied = {key: at for key, at in self._applied.items() if at >= forget_before}
        for instance_id, key in await self._store.queue.message_keys():
            if key in self._messages.get(instance_id, {}) or (instance_id, key) in self._applied:
                continue
            message = await self._store.queue.read_message(instance_id, key)
            if message is not None and (instance_id, key) not in self._applied:
                self.add(message)

    def has(self, instance_id: str, key: str) -> bool:
        return key in self._messages.get(instance_id, {})

    def due(self, instance_id: str) -> list[StoredMessage]:
        now = utcnow()
        return sorted(
            (m for m in self._messages.get(instance_id, {}).values() if m.visible_at <= now),
            key=lambda m: m.sequence,
        )

    # -- timers and the ready list --

    def fire_due_timers(self) -> None:
        now = utcnow()
        while self._timers and self._timers[0][0] <= now:
            _, instance_id, key = heapq.heappop(self._timers)
            if self.has(instance_id, key):
                self.notify(instance_id)

    def seconds_to_next_timer(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, (self._timers[0][0] - utcnow()).total_seconds())

    def notify(self, instance_id: str) -> None:
        if instance_id in self._queued:
            self._again.add(instance_id)
            return
        self._queued.add(instance_id)
        self._ready.put_nowait(instance_id)

    async def next_ready(self) -> str:
        return await self._ready.get()

    def start_episode(self, instance_id: str) -> None:
        self._again.discard(instance_id)

    def notified_again(self, instance_id: str) -> bool:
        return instance_id in self._again

    def done_with(self, instance_id: str) -> None:
        self._queued.discard(instance_id)

    # -- applied --

    async def consume(self, instance_id: str, messages: list[StoredMessage]) -> None:
        await self._store.queue.delete_messages(instance_id, [message.key for message in messages])
        self._forget_applied(instance_id, messages)

    def consume_later(
        self, instance_id: str, messages: list[StoredMessage], keys_to_delete: list[str],
    ) -> None:
        """Forget applied messages now; delete the rows of `keys_to_delete` (those the
        commit did not delete) without holding up the episode."""
        self._forget_applied(instance_id, messages)
        if keys_to_delete:
            self.spawn_write(self._store.queue.delete_messages(instance_id, keys_to_delete))

    def _forget_applied(self, instance_id: str, messages: list[StoredMessage]) -> None:
        for message in messages:
            self._messages.get(instance_id, {}).pop(message.key, None)
            self._applied[(instance_id, message.key)] = time.monotonic()
            waiter = self._settling.pop((instance_id, message.key), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def expect_applied(self, message: StoredMessage) -> asyncio.Future[None] | None:
        """On the leading host, a future set once the message is applied."""
        if not self._lease.held:
            return None
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settling[(message.instance_id, message.key)] = applied
        return applied

    def stop_expecting(self, message: StoredMessage) -> None:
        self._settling.pop((message.instance_id, message.key), None)

    def forget_instance(self, instance_id: str) -> None:
        self._messages.pop(instance_id, None)

    def spawn_write(self, write: Coroutine[Any, Any, None]) -> None:
        """A store write that finishes in the background (stepping down waits for it)."""
        task = asyncio.create_task(write)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
