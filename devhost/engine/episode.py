"""One episode of an instance: its due messages applied, its orchestrator run, the
outcome committed (history, work items, timers and the deletion of the results and timers
it applied in one transaction; then the instance row, at once when the instance ends or a
command applied, else a moment after; then the applied messages from elsewhere go). See
README.md beside this file for the commit order."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime
from typing import Any

from devhost.engine import events as ev
from devhost.engine.activities import ActivityPool
from devhost.engine.crash_points import (
    COMMIT_BEFORE_CONSUME,
    COMMIT_BEFORE_HISTORY,
    COMMIT_BEFORE_ROW,
    CONTINUE_AS_NEW_BEFORE_COMMIT,
    crash_point,
)
from devhost.engine.inbox import Inbox
from devhost.engine.instance import CachedInstance, InstanceRows
from devhost.engine.interface import TERMINAL_STATES, InvokeOrchestrator
from devhost.engine.messages import next_sequence, queued_message, start_message, utcnow
from devhost.engine.replay import replay_actions
from devhost.engine.rows import StoredMessage, WorkItem, is_local_key
from devhost.engine.scheduling import schedule_decisions
from devhost.engine.store import TaskHubStore
from devhost.engine.task_tree import OrchestrationRuleBroken

log = logging.getLogger("devhost.engine")

CONTROL_TYPES = (ev.EXECUTION_TERMINATED, ev.EXECUTION_SUSPENDED, ev.EXECUTION_RESUMED)
MESSAGES_PER_EPISODE = 90  # Azure Storage also applies messages in batches


class EpisodeRunner:
    """Runs episodes on the leading host; keeps the instances it ran lately in memory."""

    def __init__(
        self, store: TaskHubStore, inbox: Inbox, activities: ActivityPool,
        invoke_orchestrator: InvokeOrchestrator,
    ) -> None:
        self._store = store
        self._inbox = inbox
        self._activities = activities
        self._invoke_orchestrator = invoke_orchestrator
        self._instances: dict[str, CachedInstance] = {}
        self._rows = InstanceRows(store, inbox)

    def forget(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    def reset(self) -> None:
        self._instances = {}

    async def _load(self, instance_id: str) -> CachedInstance:
        cached = self._instances.get(instance_id)
        if cached is not None:
            return cached
        sentinel, history = await self._store.read_history(instance_id)
        instance = CachedInstance.from_history(instance_id, sentinel, history)
        self._instances[instance_id] = instance
        return instance

    async def run(self, instance_id: str) -> bool:
        """Apply the instance's due messages in one episode; False when none could be applied."""
        pending = self._inbox.due(instance_id)
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
                await self._inbox.consume(instance_id, [start])
                return True
        if starts:
            await self._start_execution(instance, starts[0])
            return True
        status = instance.runtime_status
        if status is None or not instance.history:
            return False  # not started yet: messages wait for ExecutionStarted
        if status in TERMINAL_STATES:
            await self._inbox.consume(instance_id, pending)
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
                await self._inbox.consume(instance_id, drop)
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
                await self._inbox.consume(instance_id, drop)
                return True
            return False
        await self._run_orchestrator(instance, deliver, drop)
        return True

    async def _start_execution(self, instance: CachedInstance, start: StoredMessage) -> None:
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
            "LastUpdatedTime": utcnow(),
            "ParentInstanceId": parent_instance.get("InstanceId"),
            "ParentExecutionId": parent_instance.get("ExecutionId"),
            "ParentTaskId": parent.get("TaskScheduleId"),
            "ParentName": parent.get("Name"),
        }
        await self._run_orchestrator(instance, [start], [], fresh=True)
        if replaces_execution:
            await self._store.delete_other_executions(instance.instance_id, instance.execution_id)

    async def _apply_control(self, instance: CachedInstance, message: StoredMessage) -> None:
        event_type = message.event["EventType"]
        status = instance.runtime_status
        now = instance.next_timestamp()
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
        await self._commit(instance, new_events, [message], outbound_work=[], row_now=True)

    async def _notify_parent(self, instance: CachedInstance, event: dict[str, Any]) -> None:
        parent_id = instance.status.get("ParentInstanceId")
        if not parent_id:
            return
        parent_execution = instance.status.get("ParentExecutionId")
        task_id = int(instance.status["ParentTaskId"])
        event["TaskScheduledId"] = task_id
        await self._inbox.send(StoredMessage(
            instance_id=parent_id, key=f"sub-{parent_execution}-{task_id:08d}",
            event=event, execution_id=parent_execution, visible_at=utcnow(),
            sequence=next_sequence(),
        ))

    async def _run_orchestrator(
        self, instance: CachedInstance, deliver: list[StoredMessage], drop: list[StoredMessage],
        fresh: bool = False,
    ) -> None:
        name = instance.status["Name"]
        now = instance.next_timestamp()
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
            answer = json.loads(await self._invoke_orchestrator(name, instance.context_json(
                new_events)))
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
        scheduled = schedule_decisions(instance, result.new_decisions, now)
        new_events += scheduled.events
        # Sent before the commit: their ids are deterministic, so a crash sends the same ones.
        for start in scheduled.sub_starts:
            await self._inbox.send(start)
        new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
        instance.status["RuntimeStatus"] = "Running"
        await self._commit(instance, new_events, consumed, outbound_work=scheduled.work,
                           outbound_timers=scheduled.timers, fresh=fresh)

    async def _continue_as_new(
        self, instance: CachedInstance, new_events: list[dict[str, Any]],
        consumed: list[StoredMessage], result: Any, now: datetime,
    ) -> None:
        raw_input = None if result.continue_as_new_input is None else json.dumps(
            result.continue_as_new_input)
        new_execution = uuid.uuid4().hex
        await self._inbox.send(start_message(
            instance.instance_id, instance.status["Name"], raw_input,
            execution_id=new_execution, parent=instance.parent(),
        ))
        # Events the orchestrator never waited for go to the next execution (the .NET
        # API's preserveUnprocessedEvents), so nothing raised between generations is lost.
        for event in result.unconsumed_events:
            await self._inbox.send(
                queued_message(instance.instance_id, "event", {**event, "IsPlayed": False})
            )
        new_events.append(ev.new_event(ev.CONTINUE_AS_NEW, now,
                                       OrchestrationStatus="ContinuedAsNew", Result=raw_input))
        new_events.append(ev.new_event(ev.ORCHESTRATOR_COMPLETED, now))
        instance.status.update(RuntimeStatus="ContinuedAsNew")
        crash_point(CONTINUE_AS_NEW_BEFORE_COMMIT)
        await self._commit(instance, new_events, consumed, outbound_work=[])

    async def _commit(
        self, instance: CachedInstance, new_events: list[dict[str, Any]],
        consumed: list[StoredMessage], *, outbound_work: list[WorkItem],
        outbound_timers: list[StoredMessage] | None = None, fresh: bool = False,
        row_now: bool = False,
    ) -> None:
        """In one ETag-guarded transaction: the history, the work items and timers it names
        and the deletion of the instance's own messages it applied; then the messages from
        elsewhere that it applied go away. A crash before the transaction runs the episode
        again from the same messages (at least once); one after it leaves messages that are
        recognised as duplicates and dropped."""
        instance.status["LastUpdatedTime"] = utcnow()
        row = {"PartitionKey": instance.instance_id, "RowKey": "",
               "ExecutionId": instance.execution_id, **instance.status}
        timers = outbound_timers or []
        # The history commits first and the row follows, as in Azure Storage: a status read
        # never runs ahead of the history (a Completed row means the whole history is there).
        # An instance that ends, or a command a caller waits on, has its row written at once,
        # on the episode's path; other episodes write it a moment later, off that path. A
        # crash in between leaves the row one step behind: a busy instance's until its next
        # episode, one that ended or started (Pending) is put right from the sentinel by
        # the sweep at start-up and every 30 s (dispatch.py).
        row_at_once = row_now or instance.runtime_status in TERMINAL_STATES
        crash_point(COMMIT_BEFORE_HISTORY)
        first = 0 if fresh else len(instance.history)
        stored_events = [{k: v for k, v in e.items() if k != "IsPlayed"} for e in new_events]
        instance.etag, left = await self._store.commit_episode(
            instance.instance_id, execution_id=instance.execution_id, first_sequence=first,
            new_events=stored_events, status=instance.status, etag=instance.etag,
            work_items=outbound_work, timers=timers,
            applied=[m.key for m in consumed if is_local_key(m.key)],
        )
        instance.history = (instance.history if not fresh else []) + stored_events
        if row_at_once:
            crash_point(COMMIT_BEFORE_ROW)
            await self._rows.write(row)
        else:
            self._rows.write_later(row)
        crash_point(COMMIT_BEFORE_CONSUME)
        if instance.runtime_status in TERMINAL_STATES:
            self._instances.pop(instance.instance_id, None)  # rarely needed again
        else:
            self._instances[instance.instance_id] = instance
        self._inbox.consume_later(
            instance.instance_id, consumed,
            left + [m.key for m in consumed if not is_local_key(m.key)],
        )
        for timer in timers:
            self._inbox.add(timer)
        for item in outbound_work:
            self._activities.schedule(item)
