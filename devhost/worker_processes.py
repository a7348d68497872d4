"""Activity worker processes: with `FUNCTIONS_WORKER_PROCESS_COUNT` = N > 1 the host runs
activity invocations in N processes, as the Functions host spreads invocations over N
Python worker processes, so CPU-bound activities use several cores.

Each worker is a `spawn`ed process (the host has threads and event loops: it is never
forked) running devhost/activity_worker.py, which imports the app once when it starts,
like the worker's function load, and answers invocations on its own event loop, plain
functions in its own pool of `PYTHON_THREADPOOL_THREAD_COUNT` threads. One duplex pipe per
worker carries tuples of strings both ways: (call id, activity name, input JSON, instance
id, invocation id) in, (call id, result JSON) or (call id, exception class name, message,
traceback text) out; no app object crosses. A `ProcessPoolExecutor` was not used because
its processes run one call at a time, so a worker could not run activities on a thread
pool (an I/O-bound fan-out of ten would need ten processes).

Invocations go round-robin over the workers that are up, as the host's load balancer
deals them out. A worker that dies (os._exit, an app crash point, the OOM killer) fails
the invocations it was running with `WorkerProcessExited` and is started again, as the
Functions host restarts a language worker; the engine records the failure as the
activity's (TaskFailed), as the Durable extension does for an invocation that failed while
the host lives on. As the Functions host, 3 failures per worker process within 30 minutes
(counted afresh after 30 quiet minutes) end the restarts; once no worker is left the host
stops (Azure recycles it), so the work items stay stored, rather than starting workers for
ever. A worker dies with the host: the pipe's end-of-file ends it, and on Linux the kernel
kills it when the host dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from devhost.activity_worker import STOP, WorkerSetup, serve_worker
from devhost.app_loading import FunctionSpec
from devhost.engine.interface import INVOKING_INSTANCE, RemoteFailure
from devhost.execution_log import WorkerProcessExited
from devhost.host_config import StartupError

log = logging.getLogger("devhost")

READY_TIMEOUT_SECONDS = 120.0
# A worker started again has the Functions host's process start timeout to load the app.
RESTART_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0
# The Functions host's ErrorEventsThreshold (3 x the process count) and
# WorkerRestartErrorIntervalThresholdInMinutes.
FAILURES_PER_WORKER = 3
FAILURE_WINDOW_SECONDS = 30 * 60

_failure_types: dict[tuple[str, str], type[RemoteFailure]] = {}


def rebuilt_failure(module: str, qualname: str, text: str, traceback_text: str) -> RemoteFailure:
    """An exception with the app exception's class name and text, for the engine and log."""
    kind = _failure_types.get((module, qualname))
    if kind is None:
        name = qualname.rsplit(".", 1)[-1]
        kind = type(name, (RemoteFailure,), {"__module__": module, "__qualname__": qualname})
        _failure_types[(module, qualname)] = kind
    error = kind(text)
    error.traceback_text = traceback_text
    return error


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    connection: Connection
    ready: asyncio.Future[int]
    pending: dict[int, asyncio.Future[str | None]] = field(default_factory=dict)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    timed_out: str | None = None  # the invocation past functionTimeout it was stopped for


class ActivityWorkers:
    """N worker processes running activities; `run_activity` is the invoker's runner."""

    def __init__(self, count: int, setup: WorkerSetup,
                 on_given_up: Callable[[], None] | None = None) -> None:
        self._count = count
        self._setup = setup
        self._on_given_up = on_given_up
        self._failures: list[float] = []
        self._started = False
        self._given_up = False
        self._cancelled_on: dict[str, _Worker] = {}  # invocation id -> its worker
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._turn = itertools.count()
        self._call_ids = itertools.count(1)
        self._stopping = False
        self._up = asyncio.Condition()

    @property
    def pids(self) -> list[int | None]:
        return [worker.process.pid for worker in self._workers]

    async def start(self) -> None:
        """Start every worker and wait until each has loaded the app."""
        self._workers = [self._spawn(index) for index in range(self._count)]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(worker.ready for worker in self._workers)),
                READY_TIMEOUT_SECONDS)
        except (StartupError, TimeoutError, WorkerProcessExited) as error:
            await self.stop()
            if isinstance(error, StartupError):
                raise
            raise StartupError(f"an activity worker process did not start: {error}") from None
        self._started = True

    def _spawn(self, index: int) -> _Worker:
        loop = asyncio.get_running_loop()
        host_end, worker_end = self._context.Pipe()
        process = self._context.Process(
            target=serve_worker, args=(worker_end, self._setup),
            name=f"devhost-worker-{index}")
        # Started from the loop's thread, which lives as long as the host: the kernel's
        # parent-death signal follows the thread that started the process.
        process.start()
        worker_end.close()
        worker = _Worker(index, process, host_end, loop.create_future())
        threading.Thread(target=self._read, args=(worker, loop), daemon=True,
                         name=f"devhost-worker-{index}-reader").start()
        return worker

    def _read(self, worker: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                break
            with contextlib.suppress(RuntimeError):  # the loop closed: the host is gone
                loop.call_soon_threadsafe(self._deliver, worker, message)
        worker.process.join()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._exited, worker)

    def _deliver(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        call_id, outcome, *rest = message
        if outcome == "ready":
            if not worker.ready.done():
                worker.ready.set_result(int(rest[0]))
            self._wake_waiters()
            return
        if outcome == "load failed":
            if not worker.ready.done():
                worker.ready.set_exception(StartupError(str(rest[0])))
            self._wake_waiters()
            return
        waiting = worker.pending.pop(call_id, None)
        if waiting is None or waiting.done():  # cancelled (timeout, host stopping)
            return
        if outcome == "ok":
            waiting.set_result(rest[0])
        else:
            waiting.set_exception(rebuilt_failure(*rest))

    def _exited(self, worker: _Worker) -> None:
        code = worker.process.exitcode
        worker.exited.set()
        failure = WorkerProcessExited(
            f"the worker process {worker.index} (pid {worker.process.pid}) "
            + (f"exited with code {code}" if worker.timed_out is None else
               f"was stopped because the invocation {worker.timed_out} it also ran timed out "
               "(functionTimeout)")
            + " during the invocation; the host starts it again")
        loaded = worker.ready.done() and worker.ready.exception() is None
        if not worker.ready.done():
            worker.ready.set_exception(failure)
            worker.ready.exception()  # retrieved: a restart's failure is logged below
        for waiting in worker.pending.values():
            if not waiting.done():
                waiting.set_exception(failure)
        worker.pending.clear()
        worker.connection.close()
        self._wake_waiters()
        if self._stopping or not self._started:
            return  # start() reports a worker that did not load the app
        if worker.timed_out is not None:  # not a failure of the worker: no count
            self._start_again(worker)
            return
        now = time.monotonic()
        if self._failures and now - self._failures[-1] > FAILURE_WINDOW_SECONDS:
            self._failures.clear()
        self._failures.append(now)
        if len(self._failures) >= FAILURES_PER_WORKER * self._count:
            log.error("activity worker process %d (pid %s) exited with code %s%s; not started "
                      "again", worker.index, worker.process.pid, code,
                      "" if loaded else " while loading the app")
            if all(other.exited.is_set() for other in self._workers):
                self._give_up()
            return
        log.warning("activity worker process %d (pid %s) exited with code %s%s; starting it "
                    "again", worker.index, worker.process.pid, code,
                    "" if loaded else " while loading the app")
        self._start_again(worker)

    def _start_again(self, worker: _Worker) -> None:
        replacement = self._spawn(worker.index)
        asyncio.get_running_loop().call_later(
            RESTART_TIMEOUT_SECONDS, self._stop_if_not_loaded, replacement)
        self._workers[worker.index] = replacement
        replacement.ready.add_done_callback(
            functools.partial(self._report_restart, worker.index))

    @staticmethod
    def _stop_if_not_loaded(worker: _Worker) -> None:
        if worker.ready.done() or worker.exited.is_set():
            return
        log.error("activity worker process %d (pid %s) did not load the app within %d s; "
                  "stopping it", worker.index, worker.process.pid, RESTART_TIMEOUT_SECONDS)
        worker.process.kill()  # its exit counts as a failure and starts it again

    @staticmethod
    def _report_restart(index: int, ready: asyncio.Future[int]) -> None:
        if ready.cancelled():
            return
        if ready.exception() is not None:
            log.error("activity worker process %d did not start again: %s", index,
                      ready.exception())
        else:
            log.info("activity worker process %d started again (pid %d)", index, ready.result())

    def _give_up(self) -> None:
        self._given_up = True
        log.error(
            "Exceeded the activity worker process restart count (%d failures per worker "
            "process within %d minutes): the host stops (the Functions host recycles itself "
            "here); the activities that were running stay stored and run again at its next "
            "start", FAILURES_PER_WORKER, FAILURE_WINDOW_SECONDS // 60)
        if self._on_given_up is not None:
            self._on_given_up()

    def _wake_waiters(self) -> None:
        async def notify() -> None:
            async with self._up:
                self._up.notify_all()
        asyncio.get_running_loop().create_task(notify())

    async def _next_worker(self) -> _Worker:
        """The next worker that is up, round-robin; waits while workers start again, and
        once the restarts are given up until the stopping host cancels the invocation (its
        work item stays stored)."""
        async with self._up:
            while True:
                up = [worker for worker in self._workers
                      if worker.ready.done() and not worker.ready.exception()
                      and not worker.exited.is_set()]
                if up:
                    return up[next(self._turn) % len(up)]
                if self._given_up and self._on_given_up is None:  # nobody stops the host
                    raise WorkerProcessExited(
                        "no activity worker process is running: each exited and could not "
                        "start again (see the host's log)")
                await self._up.wait()

    async def run_activity(self, spec: FunctionSpec, input_json: Any,
                           invocation_id: str) -> str | None:
        worker = await self._next_worker()
        call_id = next(self._call_ids)
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        worker.pending[call_id] = answer
        try:
            try:
                worker.connection.send(
                    (call_id, spec.name, input_json, INVOKING_INSTANCE.get(), invocation_id))
            except OSError as error:  # it died after it was picked
                raise WorkerProcessExited(
                    f"the worker process {worker.index} (pid {worker.process.pid}) could "
                    f"not be reached: {error}") from None
            return await answer
        except asyncio.CancelledError:  # past functionTimeout, or the host stops
            self._cancelled_on[invocation_id] = worker
            raise
        finally:
            worker.pending.pop(call_id, None)

    def restart_after_timeout(self, invocation_id: str) -> None:
        """The invocation ran past functionTimeout: stop the worker running it and start it
        again, as the Functions host restarts the worker of a timed-out invocation (its
        thread cannot be stopped otherwise); the other invocations it ran fail."""
        worker = self._cancelled_on.pop(invocation_id, None)
        if worker is None or worker.exited.is_set() or self._stopping:
            return
        log.warning("activity worker process %d (pid %s) ran the invocation that timed out: "
                    "stopping it and starting it again", worker.index, worker.process.pid)
        worker.timed_out = invocation_id
        worker.process.kill()

    async def stop(self) -> None:
        """Ask every worker to exit; kill one that has not within a few seconds."""
        self._stopping = True
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.connection.send(STOP)
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.exited.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, STOP_GRACE_SECONDS)
