"""The leading host's view of one instance: its sentinel row and current history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devhost.engine import events as ev
from devhost.engine.interface import json_value
from devhost.engine.messages import utcnow


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
            instance.status = {
                key: value for key, value in sentinel.items()
                if key not in ("PartitionKey", "RowKey", "etag", "ExecutionId", "HistoryLength")
                and not key.startswith("odata")
            }
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
