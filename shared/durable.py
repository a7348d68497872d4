"""What the app reads from Durable Functions: runtime states and client payloads.

The Python SDK's client JSON-encodes an orchestration's input a second time, so an
orchestrator (and `get_status(...).input_`) may see the object as JSON text.
"""

from __future__ import annotations

import json
from typing import Any

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

