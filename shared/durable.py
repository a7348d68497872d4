"""What the app reads from Durable Functions: runtime states, instance statuses (every
status read of the app is `read_status`) and client payloads.

The Python SDK's client JSON-encodes an orchestration's input a second time, so an
orchestrator (and `get_status(...).input_`) may see the object as JSON text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.durable_functions.models.DurableOrchestrationStatus import (
        DurableOrchestrationStatus,
    )

class DurableBackendError(Exception):
    """The durable backend answered a status read with an error document (a JSON object
    without a runtime state, answered 500): it failed, the instance's state is unknown."""


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


async def read_status(client: Any, instance_id: str, *, show_input: bool = False
                      ) -> DurableOrchestrationStatus:
    """`client.get_status(instance_id)`; raises DurableBackendError when the backend answered
    an error document. The SDK reads a 500 as a failed instance's status (the HTTP API
    answers a Failed one so) and builds a status of the error's fields: with storage down,
    an instance would look unknown (404) instead of unavailable (503)."""
    status: DurableOrchestrationStatus = await client.get_status(instance_id,
                                                                 show_input=show_input)
    if is_error_document(status):
        raise DurableBackendError(f"the durable backend answered an error document reading "
                                  f"instance {instance_id!r}")
    return status


def is_error_document(status: DurableOrchestrationStatus | None) -> bool:
    """Whether `status` is what the SDK built of an error document, not of an instance's
    status. An instance's status always has its runtime state; an unknown instance is
    answered 404 with an empty body, which the SDK keeps as a status with a `message`
    (its one way to build one of text). A JSON object without a runtime state is the
    backend's error (`{"Message": ..., "ExceptionMessage": ...}`)."""
    if status is None or getattr(status, "runtime_status", None) is not None:
        return False
    return not hasattr(status, "message")


MAX_MESSAGE = 300
_ACTIVITY_PREFIX = re.compile(r"^Activity function '[^']*' failed:\s*")


def one_line(text: str) -> str:
    """The first meaningful line of an error text, at most 300 characters: an activity's
    failure arrives as its exception's message with a serialized stack trace after it."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    # Azure's Python worker reports "Result: Failure / Exception: ... / Stack: ...".
    chosen = next((line.removeprefix("Exception:").strip() for line in lines
                   if line.startswith("Exception:")), lines[0] if lines else "")
    chosen = _ACTIVITY_PREFIX.sub("", chosen)
    return chosen if len(chosen) <= MAX_MESSAGE else chosen[:MAX_MESSAGE - 1] + "…"
