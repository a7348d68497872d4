"""Call a user function the way the Python worker does, and log the execution like the host.

Arguments are bound by parameter name to the function's bindings: the trigger value, the
durable client JSON string, `func.Out` holders for output bindings and `context` for a
parameter of that name. `async def` functions run on the event loop; plain functions run
in a thread pool. host.json `functionTimeout` bounds every execution; a disabled function
(`AzureWebJobs.<name>.Disabled`) does not run unless the admin API asks for it. Each
execution is logged once (see devhost/execution_log.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions import _abc as functions_abc
from azure.functions.durable_functions import ActivityTriggerConverter
from azure.functions.meta import Datum

from devhost.app_loading import (
    ACTIVITY_TRIGGER,
    DURABLE_CLIENT,
    HTTP_OUTPUT,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    FunctionSpec,
)
from devhost.engine.interface import INVOKING_INSTANCE
from devhost.execution_log import (
    OUT_OF_PROC_DATA_MARKER,
    FailureReport,
    FunctionDisabled,
    FunctionTimeout,
    function_failure,
    log_execution,
    orchestrator_failure,
)

T = TypeVar("T")
# Runs an invocation somewhere else (an activity worker process): (spec, trigger value,
# invocation id) -> the function's return value, already encoded.
RunElsewhere = Callable[["FunctionSpec", Any, str], Awaitable[Any]]
CONTINUE_AS_NEW_ACTION = 4  # azure.durable_functions ActionType.CONTINUE_AS_NEW


def _timespan(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _orchestration_ending(state_json: str) -> str | None:
    """How the orchestration ends with this episode's state, or None if it goes on."""
    try:
        state = json.loads(state_json)
    except ValueError:
        return None
    if not isinstance(state, dict):
        return None
    if state.get("error") is not None:
        return "failed"
    if state.get("isDone"):
        return "completed"
    groups = state.get("actions") or []
    actions = [action for group in groups if isinstance(group, list) for action in group]
    if any(isinstance(a, dict) and a.get("actionType") == CONTINUE_AS_NEW_ACTION
           for a in actions):
        return "continued as new"
    return None


class OutputValue(functions_abc.Out[Any], Generic[T]):
    """The holder passed for a `func.Out[...]` parameter."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T | None:
        return self._value


class _TraceContext(functions_abc.TraceContext):
    def __init__(self, trace_parent: str = "", trace_state: str = "") -> None:
        self._parent, self._state = trace_parent, trace_state

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(functions_abc.Context):
    """What a `context` parameter receives."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._thread_local = threading.local()
        self._trace_context = _TraceContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property  # the SDK annotates this type(threading.local); it returns an instance
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> _TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> None:  # type: ignore[override]  # no retry policies here
        return None


class FunctionInvoker:
    """Runs functions of one app: binding arguments, concurrency limits, execution logs."""

    def __init__(
        self,
        functions: list[FunctionSpec],
        *,
        app_dir: str,
        durable_client_binding: Callable[[dict[str, Any]], str] | None = None,
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrators: int = 10,
        thread_count: int | None = None,
        function_timeout: timedelta | None = None,
        disabled: frozenset[str] = frozenset(),
        activity_runner: RunElsewhere | None = None,
        timed_out_elsewhere: Callable[[str], None] | None = None,
    ) -> None:
        self.functions = {spec.name.lower(): spec for spec in functions}
        self._timeout = function_timeout
        self._disabled = {name.lower() for name in disabled}
        self._app_dir = app_dir
        self._durable_client_binding = durable_client_binding
        self._activity_runner = activity_runner
        self._timed_out_elsewhere = timed_out_elsewhere
        # The Python worker sizes its pool for sync functions from this setting.
        configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
        self._threads = ThreadPoolExecutor(
            max_workers=thread_count or (int(configured) if configured.isdigit() else 32),
            thread_name_prefix="function",
        )
        self._activity_slots = asyncio.Semaphore(max_concurrent_activities)
        self._orchestrator_slots = asyncio.Semaphore(max_concurrent_orchestrators)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def function(self, name: str, trigger_type: str) -> FunctionSpec:
        spec = self.functions.get(name.lower())
        if spec is None or spec.trigger_type != trigger_type:
            raise LookupError(f"no {trigger_type} function named {name!r} in this app")
        return spec

    def _arguments(
        self, spec: FunctionSpec, trigger_value: Any, invocation_id: str
    ) -> tuple[dict[str, Any], dict[str, OutputValue[Any]]]:
        arguments: dict[str, Any] = {}
        outputs: dict[str, OutputValue[Any]] = {}
        by_name = {binding["name"]: binding for binding in spec.bindings}
        if (
            spec.trigger_type == ORCHESTRATION_TRIGGER
            and spec.trigger["name"] not in spec.parameter_names
        ):
            # The SDK wraps orchestrators in `handle(context)` whatever `context_name` says.
            by_name["context"] = spec.trigger
        for parameter in spec.parameter_names:
            binding = by_name.get(parameter)
            if binding is None:
                if parameter == "context":
                    arguments[parameter] = InvocationContext(
                        invocation_id, spec.name, self._app_dir
                    )
                    continue
                raise TypeError(
                    f"parameter {parameter!r} of function {spec.name!r} has no binding"
                )
            if binding is spec.trigger:
                arguments[parameter] = trigger_value
            elif binding["type"] == DURABLE_CLIENT:
                if self._durable_client_binding is None:
                    raise RuntimeError("this host has no durable engine for a durable client")
                arguments[parameter] = self._durable_client_binding(binding)
            elif str(binding.get("direction", "")).upper() == "OUT":
                outputs[parameter] = arguments[parameter] = OutputValue()
            else:
                raise TypeError(
                    f"binding type {binding['type']!r} of function {spec.name!r} "
                    "is not supported by this host"
                )
        return arguments, outputs

    def is_disabled(self, name: str) -> bool:
        return name.lower() in self._disabled

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        convert_result: Callable[[Any, dict[str, OutputValue[Any]]], Any] | None = None,
        *,
        allow_disabled: bool = False,
        instance_id: str | None = None,
        quiet_unless: Callable[[Any], str | None] | None = None,
        run_elsewhere: RunElsewhere | None = None,
    ) -> tuple[Any, dict[str, OutputValue[Any]]]:
        """Run `spec` with its trigger value; return (return value, output bindings).

        `convert_result` turns the outputs into what the trigger answers; its failure is
        the invocation's failure, as when the worker cannot encode a return value.
        `instance_id` names the durable instance in the log line; `quiet_unless(result)`
        (orchestrator episodes) says how the orchestration ends, or None for an episode
        logged at DEBUG only. `run_elsewhere` runs the function in another process
        (this host's bounds, timeout and log line still apply).
        """
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            if self.is_disabled(spec.name) and not allow_disabled:
                raise FunctionDisabled(
                    f"function {spec.name!r} is disabled (AzureWebJobs.{spec.name}.Disabled)"
                )
            result, outputs = await self._run_bounded(spec, trigger_value, invocation_id,
                                                      run_elsewhere)
            self._refuse_dropped_outputs(spec, outputs)
            if convert_result is not None:
                result = convert_result(result, outputs)
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):
                failure = FailureReport("cancelled", None)
            elif (spec.trigger_type == ORCHESTRATION_TRIGGER
                  and OUT_OF_PROC_DATA_MARKER in str(error)):
                failure = orchestrator_failure(error, Path(self._app_dir))
            else:
                failure = function_failure(error)
            self._log(spec, invocation_id, started, failure, instance_id)
            raise
        ending = quiet_unless(result) if quiet_unless is not None else None
        self._log(spec, invocation_id, started, None, instance_id, result=result,
                  ending=ending,
                  level=logging.DEBUG if quiet_unless is not None and not ending
                  else logging.INFO)
        return result, outputs

    def _start_here(
        self, spec: FunctionSpec, trigger_value: Any, invocation_id: str
    ) -> tuple[Awaitable[Any], dict[str, OutputValue[Any]]]:
        arguments, outputs = self._arguments(spec, trigger_value, invocation_id)
        if spec.is_async:
            return spec.user_function(**arguments), outputs
        call = functools.partial(spec.user_function, **arguments)
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(
            self._threads, context.run, call
        ), outputs

    async def _run_bounded(
        self, spec: FunctionSpec, trigger_value: Any, invocation_id: str,
        run_elsewhere: RunElsewhere | None = None,
    ) -> tuple[Any, dict[str, OutputValue[Any]]]:
        running: Awaitable[Any]
        outputs: dict[str, OutputValue[Any]]
        if run_elsewhere is not None:
            running, outputs = run_elsewhere(spec, trigger_value, invocation_id), {}
        else:
            running, outputs = self._start_here(spec, trigger_value, invocation_id)
        if self._timeout is None:
            return await running, outputs
        try:
            return await asyncio.wait_for(running, self._timeout.total_seconds()), outputs
        except TimeoutError:
            # A plain function's thread cannot be stopped: it runs on, its result unused;
            # a worker process running it is stopped (and started again) instead.
            if run_elsewhere is not None and self._timed_out_elsewhere is not None:
                self._timed_out_elsewhere(invocation_id)
            raise FunctionTimeout(
                f"Timeout value of {_timespan(self._timeout)} exceeded by function "
                f"'Functions.{spec.name}' (Id: '{invocation_id}'). Initiating cancellation."
            ) from None

    @staticmethod
    def _log(
        spec: FunctionSpec, invocation_id: str, started: float, failure: FailureReport | None,
        instance_id: str | None, *, result: Any = None, ending: str | None = None,
        level: int = logging.INFO,
    ) -> None:
        status = getattr(result, "status", None) if spec.trigger_type == HTTP_TRIGGER else None
        log_execution(
            spec.name, invocation_id, round((time.perf_counter() - started) * 1000),
            failure=failure, instance_id=instance_id,
            status=status if isinstance(status, int) else None, ending=ending, level=level,
        )

    @staticmethod
    def _refuse_dropped_outputs(spec: FunctionSpec, outputs: dict[str, OutputValue[Any]]) -> None:
        """A value set on an output binding this host cannot deliver must not vanish."""
        by_name = {binding["name"]: binding for binding in spec.bindings}
        for name, holder in outputs.items():
            binding_type = by_name[name]["type"]
            if binding_type != HTTP_OUTPUT and holder.get() is not None:
                raise NotImplementedError(
                    f"function {spec.name!r} set output binding {name!r} of type "
                    f"{binding_type!r}, which this host cannot deliver; the value was not sent"
                )

    async def invoke_orchestrator(self, name: str, context_json: str) -> str:
        """Replay one orchestrator episode through the SDK's entry point; return its JSON."""
        spec = self.function(name, ORCHESTRATION_TRIGGER)
        try:
            instance_id = json.loads(context_json).get("instanceId")
        except (ValueError, AttributeError):
            instance_id = None
        async with self._orchestrator_slots:
            try:
                result, _ = await self.invoke(
                    spec, func.OrchestrationContext(context_json), instance_id=instance_id,
                    quiet_unless=lambda state: _orchestration_ending(str(state)),
                )
            except Exception as error:
                # The SDK reports a failed orchestrator by raising with its state appended
                # after this marker; the Functions host reads the state from the message.
                message = str(error)
                if OUT_OF_PROC_DATA_MARKER not in message:
                    raise
                return message.split(OUT_OF_PROC_DATA_MARKER, 1)[1]
        return result if isinstance(result, str) else str(result)

    async def invoke_activity(self, name: str, input_json: str | None) -> str | None:
        """Run an activity with its JSON input; return its JSON result; raise on failure.

        With activity worker processes the input and result cross as this JSON text and a
        failure comes back as a `RemoteFailure` named like the app's exception."""
        spec = self.function(name, ACTIVITY_TRIGGER)
        if self._activity_runner is not None:
            async with self._activity_slots:
                answer, _ = await self.invoke(spec, input_json,
                                              instance_id=INVOKING_INSTANCE.get(),
                                              run_elsewhere=self._activity_runner)
            return answer if answer is None else str(answer)
        value = ActivityTriggerConverter.decode(
            Datum(input_json if input_json is not None else "null", "json"),
            trigger_metadata={},
        )
        async with self._activity_slots:
            result, _ = await self.invoke(spec, value,
                                                  instance_id=INVOKING_INSTANCE.get())
        encoded: str | None = ActivityTriggerConverter.encode(result, expected_type=None).value
        return encoded

    async def run_activity_here(self, name: str, input_json: str | None,
                                invocation_id: str) -> str | None:
        """In an activity worker process: run the activity and encode its result. The
        host that sent it bounds, times and logs the invocation."""
        spec = self.function(name, ACTIVITY_TRIGGER)
        value = ActivityTriggerConverter.decode(
            Datum(input_json if input_json is not None else "null", "json"),
            trigger_metadata={},
        )
        running, outputs = self._start_here(spec, value, invocation_id)
        result = await running
        self._refuse_dropped_outputs(spec, outputs)
        encoded: str | None = ActivityTriggerConverter.encode(result, expected_type=None).value
        return encoded
