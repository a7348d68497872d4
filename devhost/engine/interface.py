"""The engine as the host shell sees it: what the shell calls, passes in and catches.

`devhost.engine.DurableEngine` implements `DurableEngineApi`; tests may hand the shell
another `EngineFactory` (an in-memory stand-in). See README.md beside this file for how
the engine keeps its state.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

BUSY_STATES = ("Pending", "Running", "ContinuedAsNew", "Suspended")
TERMINAL_STATES = ("Completed", "Failed", "Terminated", "Canceled")

# (orchestrator name, context JSON) -> the SDK's state JSON
InvokeOrchestrator = Callable[[str, str], Awaitable[str]]
# (activity name, the action's input text unchanged) -> the result as JSON text
InvokeActivity = Callable[[str, str | None], Awaitable[str | None]]


# The instance whose activity or orchestrator episode is being invoked: the engine sets it
# in the task that calls `InvokeActivity`/`InvokeOrchestrator`, the shell names it in its
# execution log lines.
INVOKING_INSTANCE: ContextVar[str | None] = ContextVar("devhost_invoking_instance", default=None)


class RemoteFailure(Exception):
    """An activity that failed in a worker process, as the host sees it: its subclasses
    carry the app exception's class name (`type(error).__name__`), `str()` is the app
    exception's text and `traceback_text` the traceback formatted in the worker."""

    traceback_text: str = ""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def traceback_text(error: BaseException) -> str:
    """The traceback to log or record for `error`: the worker's for a `RemoteFailure`."""
    if isinstance(error, RemoteFailure) and error.traceback_text:
        return error.traceback_text
    return "".join(traceback.format_exception(error)).rstrip()


def json_value(text: str | None) -> Any:
    """The value of a stored JSON text (input, output, custom status); a text that is not
    JSON stands for itself."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class InstanceAlreadyExists(Exception):
    """A start was refused: the instance is busy and overrides are NonRunningStates."""


class InstanceNotFound(Exception):
    pass


@dataclass
class InstanceStatus:
    """Datetimes are timezone-aware UTC; `input`/`output`/`custom_status` are JSON texts
    (None when absent). A failed orchestration's `output` is the JSON string
    "Orchestrator function 'X' failed: <message>"; a terminated one's is the reason as a
    JSON string (null when none). `history` is shaped like the HTTP API's `historyEvents`
    (`EventType` as a name, `Timestamp` ISO text, `FunctionName`, `ScheduledTime`,
    `FireAt`, `Reason`, `Details`, `Name`, `OrchestrationStatus` where they apply; `Input`
    as stored text unless `show_input` is false, a completion carrying its task's; `Result`
    only with `show_history_output`, as its JSON value), for the current execution (after
    continue_as_new, the latest generation's)."""

    name: str
    instance_id: str
    runtime_status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: datetime
    last_updated_time: datetime
    history: list[dict[str, Any]] | None = None


class StorageAccountLike(Protocol):
    """How the engine reaches the storage account (devhost.storage_account.StorageAccount):
    by connection string or identity. The engine closes what these return."""

    def async_credential(self) -> Any: ...

    def async_table_service(self, credential: Any = None) -> Any: ...

    def async_blob_service(self, credential: Any = None) -> Any: ...


class DurableEngineApi(Protocol):
    """What the shell relies on.

    Life cycle: constructing does no I/O. `start()` creates the tables and containers and
    tries to take the task hub lease; it returns at once: a host that does not get the
    lease stays on standby (the API still works: it writes to storage and the leading
    host runs the work) and keeps trying. `stop()` cancels running episodes and
    activities (their work items stay stored and run again at the next start) and
    releases the lease.

    Commands are queued, as in Azure: the state changes when the leading host applies
    the message. On the leading host `terminate`/`suspend`/`resume` return once it is
    applied (at most 5 s), so a status read right after shows it; `raise_event` returns
    once the event is stored. Raising an event on a terminal instance, or terminating
    one, is accepted and discarded (the shell answers 410 before that anyway). Events
    raised before the orchestration waits for them are delivered when it waits.
    """

    @property
    def is_leader(self) -> bool:
        """Whether this engine holds the task hub lease (for logging)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def start_instance(
        self, name: str, instance_id: str | None, input_json: str | None
    ) -> str:
        """Start (or, under AnyState, replace) an instance; return its id (None: a new
        uuid4 hex). `input_json` is the start body exactly as sent and is stored as the
        raw input; the orchestrator context's `input` is its JSON value. Refused under
        NonRunningStates with InstanceAlreadyExists("An Orchestration instance with the
        status Running already exists."). An id with / \\ # ? or over 256 characters
        raises ValueError fit for a 400 answer. The instance is Pending until its first
        episode runs."""
        ...

    async def get_instance(
        self, instance_id: str, *, show_history: bool = False,
        show_history_output: bool = False, show_input: bool = True,
    ) -> InstanceStatus | None:
        """None for an unknown id."""
        ...

    async def query_instances(
        self, *, runtime_status: list[str] | None, created_from: datetime | None,
        created_to: datetime | None, instance_id_prefix: str | None, top: int | None,
        continuation_token: str | None,
    ) -> tuple[list[InstanceStatus], str | None]:
        """Ordered by created time; the token is opaque (None when there are no more)."""
        ...

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        """InstanceNotFound for an unknown id (so do raise_event, suspend, resume)."""
        ...

    async def raise_event(
        self, instance_id: str, event_name: str, data_json: str | None
    ) -> None:
        """`data_json` is the body as sent; the EventRaised `Input` is that text."""
        ...

    async def suspend(self, instance_id: str, reason: str | None) -> None: ...

    async def resume(self, instance_id: str, reason: str | None) -> None: ...

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        """NotImplementedError: rewinding is not supported."""
        ...

    async def purge(self, instance_id: str) -> int:
        """1 or 0; the state is not checked (the shell refuses non-terminal purges)."""
        ...

    async def purge_many(
        self, *, created_from: datetime | None, created_to: datetime | None,
        runtime_status: list[str] | None,
    ) -> int:
        """How many instances were deleted."""
        ...


class EngineFactory(Protocol):
    """`invoke_orchestrator` gets the context the extension builds (`history, input,
    instanceId, isReplaying, parentInstanceId, upperSchemaVersion: 1,
    upperSchemaVersionNew: 2`), at most `max_concurrent_orchestrators` at once; an
    exception from it fails the orchestration with its message. `invoke_activity` gets
    the action's `input` unchanged, at most `max_concurrent_activities` at once; an
    exception becomes TaskFailed with Reason "Activity function 'X' failed:
    <ExceptionType>: <message>". Activities named `BuiltIn::HttpActivity` (call_http)
    are run by the engine. A task hub name that is not 3-45 letters/digits starting
    with a letter raises ValueError naming it."""

    def __call__(
        self, *, storage_account: StorageAccountLike, task_hub: str,
        invoke_orchestrator: InvokeOrchestrator, invoke_activity: InvokeActivity,
        max_concurrent_activities: int = 10, max_concurrent_orchestrators: int = 10,
        overridable_existing_instance_states: str = "NonRunningStates",
    ) -> DurableEngineApi: ...
