"""What the app reads from Durable Functions: runtime states and client payloads.

The Python SDK's client JSON-encodes an orchestration's input a second time, so an
orchestrator (and `get_status(...).input_`) may see the object as JSON text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.durable_functions.models.DurableOrchestrationStatus import (
        DurableOrchestrationStatus,
    )

# Runtime states of an instance that has not ended: a start over it is refused under
# overridableExistingInstanceStates = NonRunningStates.
BUSY_STATES = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})
# Runtime states of an instance that has ended: its id may be started again.
TERMINAL_STATES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


def json_object(value: Any) -> dict[str, Any] | None:
    """`value` as a JSON object, decoding JSON text (once or twice encoded); else None."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            return json_object(json.loads(value))
        except ValueError:
            return None
    return None



# The SDK types every field of a status optional (it also builds empty ones); a status the
# durable client answered for an existing instance has its id and runtime state.


def instance_id_of(status: DurableOrchestrationStatus) -> str:
    """The instance id of a status the durable client answered."""
    if status.instance_id is None:
        raise ValueError("the durable client answered a status without an instance id")
    return status.instance_id


def runtime_state_of(status: DurableOrchestrationStatus) -> str:
    """The runtime state (`Running`, `Completed`, ...) of an instance known to exist."""
    if status.runtime_status is None:
        raise ValueError(f"instance {status.instance_id!r} has no runtime status")
    return status.runtime_status.name
