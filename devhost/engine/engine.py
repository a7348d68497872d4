"""The durable orchestration engine: dispatch loops over the task hub in storage."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost.engine import events as ev
from devhost.engine.crash_points import START_BEFORE_MESSAGE, check_crash_setting, crash_point
from devhost.engine.durable_http import HTTP_ACTIVITY, DurableHttpClient
from devhost.engine.lease import TaskHubLease
from devhost.engine.replay import (
    CreateTimer,
    OrchestrationRuleBroken,
    ScheduleActivity,
    StartSubOrchestration,
    replay_actions,
)
from devhost.engine.store import (
    WORK_PREFIX,
    ConcurrentUpdate,
    StoredMessage,
    TaskHubStore,
    WorkItem,
    validate_instance_id,
)
from devhost.storage_account import StorageAccount

log = logging.getLogger("devhost.engine")

BUSY_STATES = ("Pending", "Running", "ContinuedAsNew", "Suspended")
TERMINAL_STATES = ("Completed", "Failed", "Terminated", "Canceled")
CONTROL_TYPES = (ev.EXECUTION_TERMINATED, ev.EXECUTION_SUSPENDED, ev.EXECUTION_RESUMED)
MESSAGES_PER_EPISODE = 90  # Azure Storage also applies messages in batches
POLL_SECONDS = 1.0  # how often the leader looks for messages written by other hosts
LEASE_RENEW_SECONDS = 5.0
LEASE_RETRY_SECONDS = 2.0
SETTLE_SECONDS = 5.0
LOST_START_SWEEP_SECONDS = 30.0


class InstanceAlreadyExists(Exception):
    """A start was refused: the instance is busy and overrides are NonRunningStates."""


class InstanceNotFound(Exception):
    pass


@dataclass
class InstanceStatus:
    name: str
    instance_id: str
    runtime_status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: datetime
    last_updated_time: datetime
    history: list[dict] | None = None


@dataclass
class _Instance:
    """The leader's cached view of one instance (its sentinel row and current history)."""

    instance_id: str
    etag: str | None = None
    execution_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime_status(self) -> str | None:
        return self.status.get("RuntimeStatus")


def start_key(execution_id: str) -> str:
    return f"start-{execution_id}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


_last_sequence = 0


def _sequence() -> str:
    """Increasing text that orders messages as they were sent."""
    global _last_sequence
    value = max(time.time_ns(), _last_sequence + 1)
    _last_sequence = value
    return f"{value:020d}"


def _as_utc(value: datetime | None) -> datetime:
    if value is None:
        return _utcnow()
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _failure_details(error: BaseException) -> str:
    return json.dumps({
        "ClassName": "System.Exception",
        "Message": f"{type(error).__name__}: {error}",
        "StackTraceString": "".join(traceback.format_exception(error)).rstrip(),
    })


class DurableEngine:
    def __init__(
        self,
        *,
        storage_connection_string: str | None = None,
        storage_account: StorageAccount | None = None,
        task_hub: str,
        invoke_orchestrator: Callable[[str, str], Awaitable[str]],
        invoke_activity: Callable[[str, str | None], Awaitable[str | None]],
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrators: int = 10,
        overridable_existing_instance_states: str = "NonRunningStates",
    ) -> None:
        if overridable_existing_instance_states not in ("NonRunningStates", "AnyState"):
            raise ValueError(
                "overridableExistingInstanceStates must be NonRunningStates or AnyState, not "
                f"{overridable_existing_instance_states!r}"
            )
        check_crash_setting()
        self.task_hub = task_hub
        if storage_account is None:
            if not storage_connection_string:
                raise ValueError("the engine needs a storage account or a connection string")
            storage_account = StorageAccount(connection_string=storage_connection_string)
        self._store = TaskHubStore(storage_account, task_hub)
        self._invoke_orchestrator = invoke_orchestrator
        self._invoke_activity = invoke_activity
        self._max_activities = max(1, max_concurrent_activities)
        self._max_orchestrators = max(1, max_concurrent_orchestrators)
        self._refuse_busy = overridable_existing_instance_states == "NonRunningStates"
        self._lease = TaskHubLease(self._store.leases)
        self._http = DurableHttpClient()
        self._lease_task: asyncio.Task | None = None
        self._leader_tasks: list[asyncio.Task] = []
        self._activity_tasks: set[asyncio.Task] = set()
        self._background: set[asyncio.Task] = set()
        self._stopped = False
        self._reset_leader_state()

    def _reset_leader_state(self) -> None:
        self._messages: dict[str, dict[str, StoredMessage]] = {}
        self._timers: list[tuple[datetime, str, str]] = []
        self._work: dict[tuple[str, str], WorkItem] = {}
        self._instances: dict[str, _Instance] = {}
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._again: set[str] = set()
        self._wakeup = asyncio.Event()
        # Keys of messages applied here lately: a poll that read them before their rows
        # were deleted must not bring them back.
        self._applied: dict[tuple[str, str], float] = {}
        self._activity_slots = asyncio.Semaphore(self._max_activities)
        self._completions: dict[
            str, list[tuple[WorkItem, StoredMessage, asyncio.Future[bool]]]
        ] = {}
        self._flushing: set[str] = set()
        self._settling: dict[tuple[str, str], asyncio.Future[None]] = {}

    @property
    def is_leader(self) -> bool:
        return self._lease.held

    # -- life cycle --

    async def start(self) -> None:
        await self._store.create()
        if await self._lease.try_acquire():
            await self._lead()
        self._lease_task = asyncio.create_task(self._keep_lease(), name="devhost-engine-lease")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        await self._step_down()
        await self._lease.release()
        await self._http.close()
        await self._store.close()

    async def _keep_lease(self) -> None:
        while True:
            try:
                if self._lease.held:
                    await asyncio.sleep(LEASE_RENEW_SECONDS)
                    if not await self._lease.renew():
                        await self._step_down()
                else:
                    await asyncio.sleep(LEASE_RETRY_SECONDS)
                    if await self._lease.try_acquire():
                        await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task hub lease upkeep failed; trying again")

    async def _lead(self) -> None:
        """Load pending work from storage and start the dispatch loops."""
        self._reset_leader_state()
        messages, work_items = await self._store.all_pending()
        for message in messages:
            self._add_message(message)
        for item in work_items:
            self._schedule_work(item)
        await self._recover_lost_starts()
        self._leader_tasks = [asyncio.create_task(self._pump(), name="devhost-engine-pump")]
        self._leader_tasks += [
            asyncio.create_task(self._orchestration_worker(), name=f"devhost-engine-orch-{n}")
            for n in range(self._max_orchestrators)
        ]

    async def _step_down(self) -> None:
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        tasks = self._leader_tasks + list(self._activity_tasks)
        self._leader_tasks = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._activity_tasks.clear()

    # -- messages and timers --

    def _add_message(self, message: StoredMessage) -> None:
        self._messages.setdefault(message.instance_id, {})[message.key] = message
        if message.visible_at <= _utcnow():
            self._notify(message.instance_id)
        else:
            heapq.heappush(self._timers, (message.visible_at, message.instance_id, message.key))
            self._wakeup.set()

    async def _send(self, message: StoredMessage) -> None:
        await self._store.send_message(message)
        if self.is_leader:
            self._add_message(message)

    def _notify(self, instance_id: str) -> None:
        if instance_id in self._queued:
            self._again.add(instance_id)
            return
        self._queued.add(instance_id)
        self._ready.put_nowait(instance_id)

    async def _pump(self) -> None:
        """Wake instances whose timers are due; pick up messages other hosts wrote."""
        next_poll = time.monotonic() + POLL_SECONDS
        next_sweep = time.monotonic() + LOST_START_SWEEP_SECONDS
        while True:
            now = _utcnow()
            while self._timers and self._timers[0][0] <= now:
                _, instance_id, key = heapq.heappop(self._timers)
                if key in self._messages.get(instance_id, {}):
                    self._notify(instance_id)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL_SECONDS
                try:
                    forget_before = time.monotonic() - 60
                    self._applied = {key: at for key, at in self._applied.items()
                                     if at >= forget_before}
                    for instance_id, key in await self._store.message_keys():
                        if key in self._messages.get(instance_id, {}):
                            continue
                        if (instance_id, key) in self._applied:
                            continue
                        message = await self._store.read_message(instance_id, key)
                        if message is not None and (instance_id, key) not in self._applied:
                            self._add_message(message)
                except Exception:
                    log.exception("reading the task hub messages failed")
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + LOST_START_SWEEP_SECONDS
                try:
                    await self._recover_lost_starts()
                except Exception:
                    log.exception("looking for instances that lost their start failed")
            timeout = max(0.0, next_poll - time.monotonic())
            if self._timers:
                timeout = min(timeout, max(0.0, (self._timers[0][0] - _utcnow()).total_seconds()))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    # -- activities --

    def _schedule_work(self, item: WorkItem) -> None:
        identity = (item.instance_id, item.key)
        if identity in self._work:
            return
        self._work[identity] = item
        task = asyncio.create_task(self._run_work_item(item))
        self._activity_tasks.add(task)
        task.add_done_callback(self._activity_tasks.discard)

    async def _run_work_item(self, item: WorkItem) -> None:
        async with self._activity_slots:
            try:
                if item.name == HTTP_ACTIVITY:
                    result = await self._http.send(item.input)
                else:
                    result = await self._invoke_activity(item.name, item.input)
                event = ev.new_event(ev.TASK_COMPLETED, _utcnow(), TaskScheduledId=item.task_id,
                                     Result=result)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                event = ev.new_event(
                    ev.TASK_FAILED, _utcnow(), TaskScheduledId=item.task_id,
                    Reason=f"Activity function '{item.name}' failed: "
                           f"{type(error).__name__}: {error}",
                    Details=_failure_details(error),
                )
        message = StoredMessage(
            instance_id=item.instance_id, key=f"task-{item.execution_id}-{item.task_id:08d}",
            event=event, execution_id=item.execution_id, visible_at=_utcnow(),
            sequence=_sequence(),
        )
        try:
            if await self._complete(item, message) and self.is_leader:
                self._add_message(message)
        finally:
            self._work.pop((item.instance_id, item.key), None)

    async def _complete(self, item: WorkItem, message: StoredMessage) -> bool:
        """Group commit: results that finish while a write for their instance is under way
        go together in the next transaction (a fan-out's results mostly do)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._completions.setdefault(item.instance_id, []).append((item, message, done))
        if item.instance_id not in self._flushing:
            self._flushing.add(item.instance_id)
            task = asyncio.create_task(self._flush_completions(item.instance_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return await done

    async def _flush_completions(self, instance_id: str) -> None:
        try:
            while batch := self._completions.pop(instance_id, None):
                for start in range(0, len(batch), 50):
                    chunk = batch[start:start + 50]
                    try:
                        outcomes = await self._store.complete_work_items(
                            [(item, message) for item, message, _ in chunk]
                        )
                    except Exception as error:
                        for _, _, done in chunk:
                            if not done.done():
                                done.set_exception(error)
                        continue
                    for (_, _, done), outcome in zip(chunk, outcomes, strict=True):
                        if not done.done():
                            done.set_result(outcome)
        finally:
            self._flushing.discard(instance_id)

    # -- orchestrations --

    async def _orchestration_worker(self) -> None:
        while True:
            instance_id = await self._ready.get()
            try:
                while True:
                    self._again.discard(instance_id)
                    try:
                        progressed = await self._run_episode(instance_id)
                    except ConcurrentUpdate:
                        log.warning("instance %s changed under this host; reloading", instance_id)
                        self._instances.pop(instance_id, None)
                        progressed = True
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("episode of instance %s failed; retrying soon", instance_id)
                        self._instances.pop(instance_id, None)
                        await asyncio.sleep(1.0)
                        progressed = True
                    if not progressed and instance_id not in self._again:
                        break
            finally:
                self._queued.discard(instance_id)

    async def _load(self, instance_id: str) -> _Instance:
        cached = self._instances.get(instance_id)
        if cached is not None:
            return cached
        sentinel, history = await self._store.read_history(instance_id)
        instance = _Instance(instance_id)
        if sentinel is not None:
            instance.etag = sentinel["etag"]
            instance.execution_id = sentinel.get("ExecutionId", "")
            instance.history = history
            instance.status = {
                key: value for key, value in sentinel.items()
                if key not in ("PartitionKey", "RowKey", "etag", "ExecutionId", "HistoryLength")
                and not key.startswith("odata")
            }
        self._instances[instance_id] = instance
        return instance

    def _consume_later(self, instance_id: str, messages: list[StoredMessage]) -> None:
        """Forget applied messages now; delete their rows without holding up the episode."""
        for message in messages:
            self._messages.get(instance_id, {}).pop(message.key, None)
            self._mark_applied(instance_id, message.key)
        if messages:
            task = asyncio.create_task(
                self._store.delete_messages(instance_id, [m.key for m in messages])
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _consume(self, instance_id: str, messages: list[StoredMessage]) -> None:
        await self._store.delete_messages(instance_id, [message.key for message in messages])
        for message in messages:
            self._messages.get(instance_id, {}).pop(message.key, None)
            self._mark_applied(instance_id, message.key)

    async def _run_episode(self, instance_id: str) -> bool:
        """Apply the instance's due messages in one episode; False when none could be applied."""
        now = _utcnow()
        pending = sorted(
            (m for m in self._messages.get(instance_id, {}).values() if m.visible_at <= now),
            key=lambda m: m.sequence,
        )
        if not pending:
            return False
        instance = await self._load(instance_id)
        starts = [m for m in pending if m.event["EventType"] == ev.EXECUTION_STARTED]
        current_start = next((e for e in instance.history
                              if e["EventType"] == ev.EXECUTION_STARTED), None)
        for start in starts:
            # A start already run (its row survived a crash) is not run again: it is the
            # current execution's, or older than the current execution.
            if start.execution_id == instance.execution_id or (
                current_start is not None
                and ev.parse_timestamp(start.event["Timestamp"])
                <= ev.parse_timestamp(current_start["Timestamp"])
            ):
                await self._consume(instance_id, [start])
                return True
        if starts:
            await self._start_execution(instance, starts[0])
            return True
        status = instance.runtime_status
        if status is None or not instance.history:
            return False  # not started yet: messages wait for ExecutionStarted
        if status in TERMINAL_STATES:
            await self._consume(instance_id, pending)
            return True
        drop: list[StoredMessage] = []
        deliver: list[StoredMessage] = []
        scheduled = {e["EventId"] for e in instance.history
                     if e["EventType"] in ev.SCHEDULING_TYPES}
        completed = {ev.completion_id(e) for e in instance.history} - {None}
        applied_events = {e.get("MessageKey") for e in instance.history
                          if e["EventType"] == ev.EVENT_RAISED}
        for message in pending:
            event_type = message.event["EventType"]
            if event_type in CONTROL_TYPES:
                if deliver:
                    break
                await self._consume(instance_id, drop)
                await self._apply_control(instance, message)
                return True
            if status == "Suspended":
                continue
            task_id = ev.completion_id(message.event)
            if task_id is not None:
                stale = message.execution_id not in (None, instance.execution_id)
                if stale or task_id in completed:
                    drop.append(message)
                    continue
                if task_id not in scheduled:
                    continue  # scheduled by an episode whose commit is still to come
                completed.add(task_id)
            elif message.key in applied_events:
                drop.append(message)
                continue
            deliver.append(message)
            if len(deliver) >= MESSAGES_PER_EPISODE:
                break
        if not deliver:
            if drop:
                await self._consume(instance_id, drop)
                return True
            return False
        await self._run_orchestrator(instance, deliver, drop)
        return True

    def _next_timestamp(self, instance: _Instance) -> datetime:
        now = _utcnow()
        if instance.history:
            last = ev.parse_timestamp(instance.history[-1]["Timestamp"])
            if now <= last:
                now = last + timedelta(microseconds=1)
        return now

    async def _start_execution(self, instance: _Instance, start: StoredMessage) -> None:
        started = start.event
        parent = started.get("ParentInstance") or {}
        parent_instance = parent.get("OrchestrationInstance") or {}
        replaces_execution = bool(instance.execution_id)
        instance.history = []
        instance.execution_id = start.execution_id or uuid.uuid4().hex
        carried_status = (instance.status.get("CustomStatus")
                          if instance.runtime_status == "ContinuedAsNew" else None)
        instance.status = {
            "Name": started["Name"],
            "RuntimeStatus": "Pending",
            "Input": started.get("Input"),
            "Output": None,
            "CustomStatus": carried_status,
            "CreatedTime": ev.parse_timestamp(started["Timestamp"]),
            "LastUpdatedTime": _utcnow(),
            "ParentInstanceId": parent_instance.get("InstanceId"),
            "ParentExecutionId": parent_instance.get("ExecutionId"),
            "ParentTaskId": parent.get("TaskScheduleId"),
            "ParentName": parent.get("Name"),
        }
        await self._run_orchestrator(instance, [start], [], fresh=True)
        if replaces_execution:
            await self._store.delete_other_executions(instance.instance_id, instance.execution_id)

    async def _apply_control(self, instance: _Instance, message: StoredMessage) -> None:
        event_type = message.event["EventType"]
        status = instance.runtime_status
        now = self._next_timestamp(instance)
        new_events: list[dict[str, Any]] = []
        notify_parent: dict[str, Any] | None = None
        if event_type == ev.EXECUTION_TERMINATED:
            reason = message.event.get("Input")
            new_events = [ev.new_event(ev.ORCHESTRATOR_STARTED, now),
                          ev.new_event(ev.EXECUTION_TERMINATED, now, Input=reason),
                          ev.new_event(ev.ORCHESTRATOR_COMPLETED, now)]
            instance.status.update(RuntimeStatus="Terminated", Output=json.dumps(reason))
            notify_parent = ev.new_event(
                ev.SUB_ORCHESTRATION_FAILED, now,
                Reason=f"Orchestration terminated: {reason}", Details=None,
            )
        elif event_type == ev.EXECUTION_SUSPENDED and status in ("Running", "Pending"):
            new_events = [ev.new_event(ev.EXECUTION_SUSPENDED, now,
                                       Reason=message.event.get("Reason"))]
            instance.status["RuntimeStatus"] = "Suspended"
        elif event_type == ev.EXECUTION_RESUMED and status == "Suspended":
            new_events = [ev.new_event(ev.EXECUTION_RESUMED, now,
                                       Reason=message.event.get("Reason"))]
            instance.status["RuntimeStatus"] = "Running"
        if notify_parent is not None:
            await self._notify_parent(instance, notify_parent)
        await self._commit(instance, new_events, [message], outbound_work=[])

    async def _notify_parent(self, instance: _Instance, event: dict[str, Any]) -> None:
        parent_id = instance.status.get("ParentInstanceId")
        if not parent_id:
            return
        parent_execution = instance.status.get("ParentExecutionId")
        task_id = instance.status.get("ParentTaskId")
        event["TaskScheduledId"] = task_id
        await self._send(StoredMessage(
            instance_id=parent_id, key=f"sub-{parent_execution}-{int(task_id):08d}",
            event=event, execution_id=parent_execution, visible_at=_utcnow(),
            sequence=_sequence(),
        ))

    def _context_json(self, instance: _Instance, new_events: list[dict[str, Any]]) -> str:
        history = [{**event, "IsPlayed": True} for event in instance.history]
        history += [{**event, "IsPlayed": False} for event in new_events]
        raw_input = instance.status.get("Input")
        return json.dumps({
            "history": history,
            "input": _json_value(raw_input),
            "instanceId": instance.instance_id,
            "isReplaying": bool(instance.history),
            "parentInstanceId": instance.status.get("ParentInstanceId"),
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
        })

    async def _run_orchestrator(
        self, instance: _Instance, deliver: list[StoredMessage], drop: list[StoredMessage],
        fresh: bool = False,
    ) -> None:
        name = instance.status["Name"]
        now = self._next_timestamp(instance)
        new_events = [ev.new_event(ev.ORCHESTRATOR_STARTED, now)]
        new_events += [
            {**message.event, "IsPlayed": False, "MessageKey": message.key}
            if message.event["EventType"] == ev.EVENT_RAISED
            else {**message.event, "IsPlayed": False}
            for message in deliver
        ]
        failure: str | None = None
        answer: dict[str, Any] = {}
        try:
            answer = json.loads(await self._invoke_orchestrator(name, self._context_json(
                instance, new_events)))
            if not isinstance(answer, dict):
                raise ValueError(f"the orchestrator answered {answer!r}, not an object")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = f"Orchestrator function '{name}' failed: {error}"
        result = None
        if failure is None:
            try:
                result = replay_actions(
                    history=instance.history + new_events,
                    actions=answer.get("actions") or [],
                    schema_version=int(answer.get("schemaVersion") or 0),
                    instance_id=instance.instance_id,
                    execution_id=instance.execution_id,
                    parent_instance_id=instance.status.get("ParentInstanceId"),
                )
            except OrchestrationRuleBroken as error:
                failure = f"Orchestrator function '{name}' failed: {error}"
        if answer.get("customStatus") is not None:
            instance.status["CustomStatus"] = json.dumps(answer["customStatus"])
        if result is not None and result.finished_walk and answer.get("error") is not None:
            failure = f"Orchestrator function '{name}' failed: {answer['error']}"
        consumed = deliver + drop
        if failure is not None:
            new_events.append(ev.new_event(ev.EXECUTION_COMPLETED, now,
                                           OrchestrationStatus="Failed", Result=failure))
            new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
            instance.status.update(RuntimeStatus="Failed", Output=json.dumps(failure))
            await self._notify_parent(instance, ev.new_event(
                ev.SUB_ORCHESTRATION_FAILED, now, Reason=failure,
                Details=json.dumps({"Message": failure})))
            await self._commit(instance, new_events, consumed, outbound_work=[], fresh=fresh)
            return
        assert result is not None
        if result.finished_walk and result.continues_as_new:
            await self._continue_as_new(instance, new_events, consumed, result, now)
            return
        if result.finished_walk and answer.get("isDone"):
            output = json.dumps(answer.get("output"))
            new_events.append(ev.new_event(ev.EXECUTION_COMPLETED, now,
                                           OrchestrationStatus="Completed", Result=output))
            new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
            instance.status.update(RuntimeStatus="Completed", Output=output)
            await self._notify_parent(instance, ev.new_event(
                ev.SUB_ORCHESTRATION_COMPLETED, now, Result=output))
            await self._commit(instance, new_events, consumed, outbound_work=[], fresh=fresh)
            return
        work: list[WorkItem] = []
        timers: list[StoredMessage] = []
        for decision in result.new_decisions:
            if isinstance(decision, ScheduleActivity):
                new_events.append(ev.new_event(ev.TASK_SCHEDULED, now, decision.task_id,
                                               Name=decision.name, Version="",
                                               Input=decision.input))
                work.append(WorkItem(
                    instance_id=instance.instance_id,
                    key=f"{WORK_PREFIX}{instance.execution_id}-{decision.task_id:08d}",
                    execution_id=instance.execution_id, task_id=decision.task_id,
                    name=decision.name, input=decision.input,
                ))
            elif isinstance(decision, CreateTimer):
                fire_at = ev.format_timestamp(decision.fire_at)
                new_events.append(ev.new_event(ev.TIMER_CREATED, now, decision.task_id,
                                               FireAt=fire_at))
                timers.append(StoredMessage(
                    instance_id=instance.instance_id,
                    key=f"timer-{instance.execution_id}-{decision.task_id:08d}",
                    event=ev.new_event(ev.TIMER_FIRED, decision.fire_at, TimerId=decision.task_id,
                                       FireAt=fire_at),
                    execution_id=instance.execution_id, visible_at=decision.fire_at,
                    sequence=_sequence(),
                ))
            elif isinstance(decision, StartSubOrchestration):
                sub_input = None if decision.input is None else json.dumps(decision.input)
                new_events.append(ev.new_event(ev.SUB_ORCHESTRATION_CREATED, now, decision.task_id,
                                               Name=decision.name, Version="",
                                               InstanceId=decision.instance_id, Input=sub_input))
                await self._send_start(
                    decision.instance_id, decision.name, sub_input,
                    execution_id=uuid.uuid5(
                        uuid.NAMESPACE_URL, f"{instance.execution_id}/{decision.task_id}"
                    ).hex,
                    parent={
                        "Name": instance.status["Name"],
                        "OrchestrationInstance": {"InstanceId": instance.instance_id,
                                                  "ExecutionId": instance.execution_id},
                        "TaskScheduleId": decision.task_id,
                    },
                )
        new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
        instance.status["RuntimeStatus"] = "Running"
        await self._commit(instance, new_events, consumed, outbound_work=work,
                           outbound_timers=timers, fresh=fresh)

    async def _continue_as_new(
        self, instance: _Instance, new_events: list[dict[str, Any]],
        consumed: list[StoredMessage], result: Any, now: datetime,
    ) -> None:
        raw_input = None if result.continue_as_new_input is None else json.dumps(
            result.continue_as_new_input)
        new_execution = uuid.uuid4().hex
        await self._send_start(
            instance.instance_id, instance.status["Name"], raw_input,
            execution_id=new_execution, parent=self._parent_of(instance),
        )
        # Events the orchestrator never waited for go to the next execution (the .NET
        # API's preserveUnprocessedEvents), so nothing raised between generations is lost.
        for event in result.unconsumed_events:
            await self._send(StoredMessage(
                instance_id=instance.instance_id, key=f"event-{_sequence()}-{uuid.uuid4().hex}",
                event={**event, "IsPlayed": False}, execution_id=None, visible_at=_utcnow(),
                sequence=_sequence(),
            ))
        new_events.append(ev.new_event(ev.CONTINUE_AS_NEW, now,
                                       OrchestrationStatus="ContinuedAsNew", Result=raw_input))
        new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
        instance.status.update(RuntimeStatus="ContinuedAsNew")
        await self._commit(instance, new_events, consumed, outbound_work=[])

    @staticmethod
    def _parent_of(instance: _Instance) -> dict[str, Any] | None:
        parent_id = instance.status.get("ParentInstanceId")
        if not parent_id:
            return None
        return {
            "Name": instance.status.get("ParentName"),
            "OrchestrationInstance": {"InstanceId": parent_id,
                                      "ExecutionId": instance.status.get("ParentExecutionId")},
            "TaskScheduleId": instance.status.get("ParentTaskId"),
        }

    async def _send_start(
        self, instance_id: str, name: str, raw_input: str | None, *, execution_id: str,
        parent: dict[str, Any] | None, started_at: datetime | None = None,
    ) -> None:
        event = ev.new_event(
            ev.EXECUTION_STARTED, started_at or _utcnow(), Name=name, Version="", Input=raw_input,
            OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        )
        if parent is not None:
            event["ParentInstance"] = parent
        await self._send(StoredMessage(
            instance_id=instance_id, key=start_key(execution_id), event=event,
            execution_id=execution_id, visible_at=_utcnow(), sequence=_sequence(),
        ))

    async def _commit(
        self, instance: _Instance, new_events: list[dict[str, Any]],
        consumed: list[StoredMessage], *, outbound_work: list[WorkItem],
        outbound_timers: list[StoredMessage] | None = None, fresh: bool = False,
    ) -> None:
        """Work items, timers and the instance row; then history (ETag-guarded); then the
        consumed messages go away. Work the history names is stored before it: a crash in
        between runs it again (at least once) and never loses it; a message whose effect
        is stored but that survived a crash is recognised as a duplicate and dropped."""
        instance.status["LastUpdatedTime"] = _utcnow()
        row = {"PartitionKey": instance.instance_id, "RowKey": "",
               "ExecutionId": instance.execution_id, **instance.status}
        timers = outbound_timers or []
        await asyncio.gather(
            self._store.write_instance(row),
            self._store.write_outbound(instance.instance_id, outbound_work, timers),
        )
        for timer in timers:
            self._add_message(timer)
        first = 0 if fresh else len(instance.history)
        stored_events = [{k: v for k, v in e.items() if k != "IsPlayed"} for e in new_events]
        instance.etag = await self._store.commit_history(
            instance.instance_id, execution_id=instance.execution_id, first_sequence=first,
            new_events=stored_events, status=instance.status, etag=instance.etag,
        )
        instance.history = (instance.history if not fresh else []) + stored_events
        if instance.runtime_status in TERMINAL_STATES:
            self._instances.pop(instance.instance_id, None)  # rarely needed again
        else:
            self._instances[instance.instance_id] = instance
        self._consume_later(instance.instance_id, consumed)
        for item in outbound_work:
            self._schedule_work(item)

    # -- the API the host shell uses --

    async def start_instance(
        self, name: str, instance_id: str | None, input_json: str | None
    ) -> str:
        instance_id = instance_id or uuid.uuid4().hex
        validate_instance_id(instance_id)
        existing = await self._store.read_instance(instance_id)
        busy = existing is not None and existing.get("RuntimeStatus") in BUSY_STATES
        if busy and self._refuse_busy:
            assert existing is not None
            await self._recover_lost_start(existing)  # the instance in the way must run
            raise InstanceAlreadyExists(
                f"An Orchestration instance with the status {existing['RuntimeStatus']} "
                "already exists."
            )
        now = _utcnow()
        execution_id = uuid.uuid4().hex
        row = {"PartitionKey": instance_id, "RowKey": "", "Name": name,
               "RuntimeStatus": "Pending", "Input": input_json, "CreatedTime": now,
               "LastUpdatedTime": now, "ExecutionId": execution_id}
        try:
            await self._store.create_or_replace_instance(
                row, etag=existing["etag"] if existing is not None else None,
                must_not_exist=existing is None,
            )
        except ConcurrentUpdate as error:
            raise InstanceAlreadyExists(
                f"An Orchestration instance with ID {instance_id} was started concurrently."
            ) from error
        # A crash here leaves a Pending row without its start message: the next leader's
        # start-up, its periodic sweep or the next command for the instance sends it again.
        crash_point(START_BEFORE_MESSAGE)
        await self._send_start(instance_id, name, input_json, execution_id=execution_id,
                               parent=None, started_at=now)
        return instance_id

    async def _recover_lost_starts(self) -> None:
        for row in await self._store.query_instances(
            "RuntimeStatus eq @pending", {"pending": "Pending"}
        ):
            await self._recover_lost_start(row)

    async def _recover_lost_start(self, row: dict[str, Any]) -> None:
        """Send the start message of a Pending instance whose host stopped between writing
        its row and that message. Rebuilt from the row, it is the lost message (same key,
        same event): if it was not lost after all, the copy is recognised and dropped."""
        execution_id = row.get("ExecutionId")
        if row.get("RuntimeStatus") != "Pending" or not execution_id:
            return
        instance_id = row["PartitionKey"]
        if await self._store.has_message(instance_id, start_key(execution_id)):
            return
        if await self._store.current_execution_id(instance_id) == execution_id:
            return
        log.warning("instance %s was Pending without its start message (a host stopped "
                    "between the two writes); sending it again", instance_id)
        await self._send_start(instance_id, row.get("Name", ""), row.get("Input"),
                               execution_id=execution_id, parent=None,
                               started_at=_as_utc(row.get("CreatedTime")))

    async def get_instance(
        self, instance_id: str, *, show_history: bool = False, show_history_output: bool = False,
        show_input: bool = True,
    ) -> InstanceStatus | None:
        row = await self._store.read_instance(instance_id)
        if row is None:
            return None
        status = self._status(row, show_input=show_input)
        if show_history:
            _, history = await self._store.read_history(instance_id)
            status.history = ev.api_history(history, with_output=show_history_output)
        return status

    @staticmethod
    def _status(row: dict[str, Any], *, show_input: bool = True) -> InstanceStatus:
        return InstanceStatus(
            name=row.get("Name", ""),
            instance_id=row["PartitionKey"],
            runtime_status=row.get("RuntimeStatus", "Pending"),
            input=row.get("Input") if show_input else None,
            output=row.get("Output"),
            custom_status=row.get("CustomStatus"),
            created_time=_as_utc(row.get("CreatedTime")),
            last_updated_time=_as_utc(row.get("LastUpdatedTime")),
        )

    async def _matching_rows(
        self, runtime_status: list[str] | None, created_from: datetime | None,
        created_to: datetime | None, instance_id_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if runtime_status:
            names = [f"@s{n}" for n in range(len(runtime_status))]
            clauses.append("(" + " or ".join(f"RuntimeStatus eq {n}" for n in names) + " )")
            parameters.update({n[1:]: s for n, s in zip(names, runtime_status, strict=True)})
        if created_from is not None:
            clauses.append("CreatedTime ge @created_from")
            parameters["created_from"] = _as_utc(created_from)
        if created_to is not None:
            clauses.append("CreatedTime le @created_to")
            parameters["created_to"] = _as_utc(created_to)
        if instance_id_prefix:
            clauses.append("PartitionKey ge @prefix_from and PartitionKey lt @prefix_to")
            parameters["prefix_from"] = instance_id_prefix
            parameters["prefix_to"] = instance_id_prefix[:-1] + chr(ord(instance_id_prefix[-1]) + 1)
        rows = await self._store.query_instances(" and ".join(clauses), parameters)
        return sorted(rows, key=lambda r: (_as_utc(r.get("CreatedTime")), r["PartitionKey"]))

    async def query_instances(
        self, *, runtime_status: list[str] | None, created_from: datetime | None,
        created_to: datetime | None, instance_id_prefix: str | None, top: int | None,
        continuation_token: str | None,
    ) -> tuple[list[InstanceStatus], str | None]:
        rows = await self._matching_rows(runtime_status, created_from, created_to,
                                         instance_id_prefix)
        try:
            start = int(continuation_token) if continuation_token else 0
        except ValueError:
            start = 0
        end = len(rows) if not top or top <= 0 else start + top
        token = str(end) if end < len(rows) else None
        return [self._status(row) for row in rows[start:end]], token

    async def _control(
        self, instance_id: str, event: dict[str, Any], prefix: str, *, settle: bool = False,
    ) -> None:
        """Queue a message for the instance. With `settle`, on the leading host, return once
        it is applied (or after a few seconds), so a status read next shows its effect."""
        row = await self._store.read_instance(instance_id)
        if row is None:
            raise InstanceNotFound(instance_id)
        # Queued behind a start that was lost, the command would never apply.
        await self._recover_lost_start(row)
        key = f"{prefix}-{_sequence()}-{uuid.uuid4().hex}"
        applied: asyncio.Future[None] | None = None
        if settle and self.is_leader:
            applied = asyncio.get_running_loop().create_future()
            self._settling[(instance_id, key)] = applied
        try:
            await self._send(StoredMessage(
                instance_id=instance_id, key=key, event=event, execution_id=None,
                visible_at=_utcnow(), sequence=_sequence(),
            ))
            if applied is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(applied), SETTLE_SECONDS)
        finally:
            self._settling.pop((instance_id, key), None)

    def _mark_applied(self, instance_id: str, key: str) -> None:
        self._applied[(instance_id, key)] = time.monotonic()
        waiter = self._settling.pop((instance_id, key), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_TERMINATED, _utcnow(),
                                                      Input=reason), "terminate", settle=True)

    async def raise_event(self, instance_id: str, event_name: str, data_json: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EVENT_RAISED, _utcnow(),
                                                      Name=event_name, Input=data_json), "event")

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_SUSPENDED, _utcnow(),
                                                      Reason=reason), "suspend", settle=True)

    async def resume(self, instance_id: str, reason: str | None) -> None:
        await self._control(instance_id, ev.new_event(ev.EXECUTION_RESUMED, _utcnow(),
                                                      Reason=reason), "resume", settle=True)

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        raise NotImplementedError("rewind is not supported by the devhost engine")

    async def purge(self, instance_id: str) -> int:
        self._instances.pop(instance_id, None)
        self._messages.pop(instance_id, None)
        return 1 if await self._store.purge_instance(instance_id) else 0

    async def purge_many(
        self, *, created_from: datetime | None, created_to: datetime | None,
        runtime_status: list[str] | None,
    ) -> int:
        rows = await self._matching_rows(runtime_status, created_from, created_to)
        deleted = 0
        for row in rows:
            deleted += await self.purge(row["PartitionKey"])
        return deleted
