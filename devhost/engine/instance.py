"""The leading host's view of one instance (its sentinel row and current history) and the
writer of instance rows."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devhost.engine import events as ev
from devhost.engine.inbox import Inbox
from devhost.engine.interface import json_value
from devhost.engine.messages import utcnow
from devhost.engine.store import TaskHubStore

log = logging.getLogger("devhost.engine")

# How long an ordinary episode's instance row may wait for the rows of the episodes that
# follow it (written as one): a status read lags the history by about this much at most.
ROW_DELAY_SECONDS = 0.1
SENTINEL_ONLY_FIELDS = ("PartitionKey", "RowKey", "etag", "ExecutionId", "HistoryLength")


def status_fields(sentinel: dict[str, Any]) -> dict[str, Any]:
    """The instance's status as its sentinel row carries it."""
    return {key: value for key, value in sentinel.items()
            if key not in SENTINEL_ONLY_FIELDS and not key.startswith("odata")}


@dataclass
class CachedInstance:
    """The leader's cached view of one instance (its sentinel row and current history)."""

    instance_id: str
    etag: str | None = None
    execution_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime_status(self) -> str | None:
        return self.status.get("RuntimeStatus")

    @classmethod
    def from_history(
        cls, instance_id: str, sentinel: dict[str, Any] | None, history: list[dict[str, Any]],
    ) -> CachedInstance:
        instance = cls(instance_id)
        if sentinel is not None:
            instance.etag = sentinel["etag"]
            instance.execution_id = sentinel.get("ExecutionId", "")
            instance.history = history
            instance.status = status_fields(sentinel)
        return instance

    def next_timestamp(self) -> datetime:
        """Now, or just after the last event (history timestamps never go back)."""
        now = utcnow()
        if self.history:
            last = ev.parse_timestamp(self.history[-1]["Timestamp"])
            if now <= last:
                now = last + timedelta(microseconds=1)
        return now

    def context_json(self, new_events: list[dict[str, Any]]) -> str:
        """The orchestration context the extension hands the SDK."""
        history = [{**event, "IsPlayed": True} for event in self.history]
        history += [{**event, "IsPlayed": False} for event in new_events]
        raw_input = self.status.get("Input")
        return json.dumps({
            "history": history,
            "input": json_value(raw_input),
            "instanceId": self.instance_id,
            "isReplaying": bool(self.history),
            "parentInstanceId": self.status.get("ParentInstanceId"),
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
        })

    def parent(self) -> dict[str, Any] | None:
        """The ParentInstance of a sub-orchestration's next start (None at top level)."""
        parent_id = self.status.get("ParentInstanceId")
        if not parent_id:
            return None
        return {
            "Name": self.status.get("ParentName"),
            "OrchestrationInstance": {"InstanceId": parent_id,
                                      "ExecutionId": self.status.get("ParentExecutionId")},
            "TaskScheduleId": self.status.get("ParentTaskId"),
        }


class InstanceRows:
    """Writes instance rows, the newest first come: at once (an instance that ends, a
    command) or a moment later (ordinary episodes: the rows of episodes that follow in
    that moment go as one write, the newest)."""

    def __init__(self, store: TaskHubStore, inbox: Inbox) -> None:
        self._store = store
        self._inbox = inbox
        self._newest: dict[str, dict[str, Any]] = {}  # queued, not yet being written
        self._turns: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()
        self._soon: set[str] = set()

    async def write(self, row: dict[str, Any]) -> None:
        self._newest[row["PartitionKey"]] = row
        await self._write_newest(row["PartitionKey"])

    def write_later(self, row: dict[str, Any]) -> None:
        instance_id = row["PartitionKey"]
        self._newest[instance_id] = row
        if instance_id not in self._soon:
            self._soon.add(instance_id)
            self._inbox.spawn_write(self._write_soon(instance_id))

    async def _write_soon(self, instance_id: str) -> None:
        try:
            await asyncio.sleep(ROW_DELAY_SECONDS)
            self._soon.discard(instance_id)  # a row queued from now on gets a write of its own
            await self._write_newest(instance_id)
        except Exception:
            # The next episode writes the row again; until then it shows an older state.
            log.exception("writing the instance row of %s failed", instance_id)
        finally:
            self._soon.discard(instance_id)

    async def _write_newest(self, instance_id: str) -> None:
        # One write at a time per instance, each taking the newest row when its turn
        # comes: a row is never overwritten by an older one.
        turn = self._turns.setdefault(instance_id, asyncio.Lock())
        self._users[instance_id] += 1
        try:
            async with turn:
                row = self._newest.pop(instance_id, None)
                if row is not None:
                    await self._store.write_instance(row)
        finally:
            self._users[instance_id] -= 1
            if not self._users[instance_id]:
                del self._users[instance_id]
                del self._turns[instance_id]
