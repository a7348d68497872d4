"""The host's log lines about executions: one line each, a traceback only when it helps.

Every execution gets one line, `Executed 'Functions.<name>' (<outcome>, [Instance=<id>,]
Id=<invocation id>, Duration=<n>ms)`, with the instance id for activities and
orchestrator episodes and the status code for HTTP functions. An orchestrator's episodes
replay the same code many times, so only the episode that ends the orchestration (done,
failed or continued as new) is logged at INFO; the others are DEBUG (`--verbose`).

A failure adds its reason to that line. Its traceback follows once, unless the failure is
an expected outcome whose traceback would only repeat the reason:

- a function timeout (`functionTimeout` of host.json), a disabled function, an activity
  worker process that exited during the invocation;
- `start_new` refused because a running instance holds the id (the SDK raises the
  durable API's 409 answer as a bare Exception);
- an orchestrator that raised an exception of the app's own (a decision such as "this load
  cannot be restarted") or the SDK's bare Exception for a failed activity (whose traceback
  was logged when the activity failed): the raise site is named instead. A built-in
  exception type other than Exception (KeyError, TypeError, ...) is a bug: its traceback
  is logged, without the SDK's wrapper and its `$OutOfProcData$` state dump.
"""

from __future__ import annotations

import builtins
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.engine.interface import traceback_text

log = logging.getLogger("devhost.functions")

OUT_OF_PROC_DATA_MARKER = "$OutOfProcData$:"
_SDK_PACKAGE = "azure/durable_functions/"


class FunctionTimeout(TimeoutError):
    """The execution ran past host.json `functionTimeout` (the message is the host's)."""


class FunctionDisabled(RuntimeError):
    """The function is disabled by its `AzureWebJobs.<name>.Disabled` setting."""


class WorkerProcessExited(RuntimeError):
    """The activity worker process running the invocation exited before answering."""


@dataclass(frozen=True)
class FailureReport:
    summary: str  # one line
    traceback: str | None  # None: the summary says it all


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _raise_site(error: BaseException, app_dir: Path) -> str:
    """`file:line` of the innermost frame of the app (not the SDK, not the stdlib), relative
    to the app folder when it lies in it."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_relative_to(app_dir) and "site-packages" not in path.parts:
            return f"{path.relative_to(app_dir).as_posix()}:{frame.lineno}"
    return ""


def _start_refusal(error: BaseException) -> str | None:
    """The durable API's refusal message when `error` is the SDK's start_new raising on a
    busy instance; None otherwise."""
    frames = traceback.extract_tb(error.__traceback__)
    if type(error) is not Exception or not frames:
        return None
    innermost = frames[-1]
    if innermost.name != "start_new" or _SDK_PACKAGE not in innermost.filename.replace("\\", "/"):
        return None
    answer: Any = error.args[0] if error.args else ""
    message = str(answer.get("Message", answer)) if isinstance(answer, dict) else str(answer)
    return message if "already exists" in message else None


def _is_bug_type(error: BaseException) -> bool:
    kind = type(error)
    return kind is not Exception and getattr(builtins, kind.__name__, None) is kind


def orchestrator_failure(error: BaseException, app_dir: Path) -> FailureReport:
    """An orchestrator function that raised: the SDK wraps the app's exception in
    `Exception(message + $OutOfProcData$ state)` raised `from` it."""
    cause = error.__cause__ or error
    message = _first_line(str(cause).split(OUT_OF_PROC_DATA_MARKER, 1)[0])
    name = type(cause).__name__
    site = _raise_site(cause, app_dir)
    summary = f"{name}: {message}" + (f" (raised at {site})" if site else "")
    if _is_bug_type(cause):
        return FailureReport(summary, "".join(traceback.format_exception(cause)).rstrip())
    return FailureReport(summary, None)


def function_failure(error: BaseException) -> FailureReport:
    """Any other function that raised."""
    if isinstance(error, FunctionTimeout | FunctionDisabled | WorkerProcessExited):
        return FailureReport(str(error), None)
    refusal = _start_refusal(error)
    if refusal is not None:
        return FailureReport(f"start_new refused: {refusal}", None)
    summary = f"{type(error).__name__}: {_first_line(str(error))}"
    return FailureReport(summary, traceback_text(error))


def log_execution(
    name: str,
    invocation_id: str,
    duration_ms: int,
    *,
    failure: FailureReport | None = None,
    instance_id: str | None = None,
    status: int | None = None,
    ending: str | None = None,
    level: int = logging.INFO,
) -> None:
    """One line per execution; `ending` says how an orchestration ended in this episode."""
    details = ["Succeeded" if failure is None else "Failed"]
    if instance_id:
        details.append(f"Instance={instance_id}")
    details += [f"Id={invocation_id}", f"Duration={duration_ms}ms"]
    if status is not None:
        details.append(f"Status={status}")
    line = f"Executed 'Functions.{name}' ({', '.join(details)})"
    if failure is not None:
        line += f": {failure.summary}"
    elif ending:
        line += f": orchestration {ending}"
    log.log(logging.INFO if failure is not None else level, "%s", line)
    if failure is not None and failure.traceback:
        log.error("%s", failure.traceback)
