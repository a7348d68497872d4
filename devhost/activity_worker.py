"""The activity worker process (devhost/worker_processes.py starts it): load the app once,
then run each activity the host sends over the pipe on its own event loop and thread pool,
and send back its encoded result or its failure as strings (no app object crosses).

A worker dies with its host (pipe end-of-file, and on Linux PR_SET_PDEATHSIG), ignores the
signals meant for the host (the host stops it), and ends itself when an activity ends its
event loop (sys.exit()), as in-process that ends the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from devhost.app_loading import load_function_app
from devhost.durable_endpoints import DurableEndpoints
from devhost.engine.interface import INVOKING_INSTANCE
from devhost.host_config import StartupError
from devhost.invocation import FunctionInvoker
from devhost.log_format import configure_logging

_PR_SET_PDEATHSIG = 1
STOP = "stop"


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to load the app as the host did (settings come with the
    environment, which a spawned process inherits)."""

    app_dir: str
    host_pid: int
    thread_count: int | None
    endpoints: DurableEndpoints | None
    verbose: bool


def _die_with_host(host_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != host_pid:  # the host died before the line above took effect
        os._exit(1)


def _failure_message(call_id: int, error: BaseException) -> tuple[Any, ...]:
    try:
        text = str(error)
    except Exception:  # an app exception whose __str__ fails still fails its task
        text = f"<{type(error).__name__} whose text could not be read>"
    return (call_id, "failed", type(error).__module__, type(error).__qualname__, text,
            "".join(traceback.format_exception(error)).rstrip())


def _run_until_an_exit(loop: asyncio.AbstractEventLoop) -> None:
    """Run the worker's loop; an activity's sys.exit() (or KeyboardInterrupt), which
    asyncio lets out of the loop, ends the process as in-process it ends the host, rather
    than leave a worker that reads invocations and never runs them."""
    try:
        loop.run_forever()
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 0 if error.code is None else 1
    except BaseException:
        code = 1
    else:
        return
    logging.shutdown()
    os._exit(code)


def serve_worker(connection: Connection, setup: WorkerSetup) -> None:
    """The worker process: load the app, then run each activity the host sends."""
    _die_with_host(setup.host_pid)
    # Ctrl+C, or a SIGTERM sent to the host's process group (`kill -TERM -<pgid>`,
    # timeout(1), a supervisor), stops the host, which stops us once its engine stopped
    # taking results: the activities we run stay stored and run again after a restart, as
    # in-process. Dying of the signal first would record them as failed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(setup.verbose)
    try:
        functions = load_function_app(Path(setup.app_dir))
    except StartupError as error:
        connection.send((0, "load failed", str(error)))
        return
    loop = asyncio.new_event_loop()
    threading.Thread(target=_run_until_an_exit, args=(loop,), name="worker-loop",
                     daemon=True).start()
    invoker = FunctionInvoker(
        functions, app_dir=setup.app_dir, thread_count=setup.thread_count,
        durable_client_binding=(setup.endpoints.client_binding_json
                                if setup.endpoints is not None else None),
    )
    sending = threading.Lock()

    def answer(call_id: int, done: Future[str | None]) -> None:
        error = done.exception()
        message = ((call_id, "ok", done.result()) if error is None
                   else _failure_message(call_id, error))
        with sending, contextlib.suppress(OSError):  # the host is gone: nobody to answer
            connection.send(message)

    async def run(name: str, input_json: str | None, instance_id: str | None,
                  invocation_id: str) -> str | None:
        INVOKING_INSTANCE.set(instance_id)
        return await invoker.run_activity_here(name, input_json, invocation_id)

    with sending:
        connection.send((0, "ready", os.getpid()))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            break
        if request == STOP:
            break
        call_id, name, input_json, instance_id, invocation_id = request
        running = asyncio.run_coroutine_threadsafe(
            run(name, input_json, instance_id, invocation_id), loop)
        running.add_done_callback(functools.partial(answer, call_id))
    # Stopping, or the host is gone. Activities still running are abandoned: their work
    # items stay stored and the engine runs them again, as after a host crash.
    logging.shutdown()
    os._exit(0)
