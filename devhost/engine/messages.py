"""Messages an instance receives: the start of an execution and queued commands."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devhost.engine import events as ev
from devhost.engine.rows import StoredMessage

_last_sequence = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime:
    if value is None:
        return utcnow()
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def next_sequence() -> str:
    """Increasing text that orders messages as they were sent."""
    global _last_sequence
    value = max(time.time_ns(), _last_sequence + 1)
    _last_sequence = value
    return f"{value:020d}"


def start_key(execution_id: str) -> str:
    return f"start-{execution_id}"


def start_message(
    instance_id: str, name: str, raw_input: str | None, *, execution_id: str,
    parent: dict[str, Any] | None, started_at: datetime | None = None,
) -> StoredMessage:
    event = ev.new_event(
        ev.EXECUTION_STARTED, started_at or utcnow(), Name=name, Version="", Input=raw_input,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
    )
    if parent is not None:
        event["ParentInstance"] = parent
    return StoredMessage(
        instance_id=instance_id, key=start_key(execution_id), event=event,
        execution_id=execution_id, visible_at=utcnow(), sequence=next_sequence(),
    )


def queued_message(instance_id: str, prefix: str, event: dict[str, Any]) -> StoredMessage:
    """A message for whichever execution is current when it is applied."""
    return StoredMessage(
        instance_id=instance_id, key=f"{prefix}-{next_sequence()}-{uuid.uuid4().hex}",
        event=event, execution_id=None, visible_at=utcnow(), sequence=next_sequence(),
    )
