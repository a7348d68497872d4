"""Activities on the leading host: each stored work item runs once per leadership, at
most `max_concurrent_activities` at a time, and its result replaces it in storage."""

from __future__ import annotations

import asyncio
import json

from devhost.engine import events as ev
from devhost.engine.crash_points import ACTIVITY_BEFORE_RESULT, crash_point
from devhost.engine.durable_http import HTTP_ACTIVITY, DurableHttpClient
from devhost.engine.inbox import Inbox
from devhost.engine.interface import INVOKING_INSTANCE, InvokeActivity, traceback_text
from devhost.engine.messages import next_sequence, utcnow
from devhost.engine.rows import StoredMessage, WorkItem
from devhost.engine.store import TaskHubStore

COMPLETIONS_PER_TRANSACTION = 100


def _failure_details(error: BaseException) -> str:
    return json.dumps({
        "ClassName": "System.Exception",
        "Message": f"{type(error).__name__}: {error}",
        "StackTraceString": traceback_text(error),
    })


class ActivityPool:
    def __init__(
        self, store: TaskHubStore, inbox: Inbox, invoke_activity: InvokeActivity,
        max_activities: int,
    ) -> None:
        self._store = store
        self._inbox = inbox
        self._invoke_activity = invoke_activity
        self._max_activities = max_activities
        self._http = DurableHttpClient()
        self.tasks: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        self._work: dict[tuple[str, str], WorkItem] = {}
        self._slots = asyncio.Semaphore(self._max_activities)
        self._completions: dict[
            str, list[tuple[WorkItem, StoredMessage, asyncio.Future[StoredMessage | None]]]
        ] = {}
        self._flushing: set[str] = set()

    async def close(self) -> None:
        await self._http.close()

    def schedule(self, item: WorkItem) -> None:
        identity = (item.instance_id, item.key)
        if identity in self._work:
            return
        self._work[identity] = item
        task = asyncio.create_task(self._run(item))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, item: WorkItem) -> None:
        async with self._slots:
            result: str | None
            try:
                if item.name == HTTP_ACTIVITY:
                    result = await self._http.send(item.input)
                else:
                    INVOKING_INSTANCE.set(item.instance_id)
                    result = await self._invoke_activity(item.name, item.input)
                event = ev.new_event(ev.TASK_COMPLETED, utcnow(), TaskScheduledId=item.task_id,
                                     Result=result)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                event = ev.new_event(
                    ev.TASK_FAILED, utcnow(), TaskScheduledId=item.task_id,
                    Reason=f"Activity function '{item.name}' failed: "
                           f"{type(error).__name__}: {error}",
                    Details=_failure_details(error),
                )
        crash_point(ACTIVITY_BEFORE_RESULT)
        message = StoredMessage(
            instance_id=item.instance_id,
            key=item.key,  # the result takes the work item's row
            event=event, execution_id=item.execution_id, visible_at=utcnow(),
            sequence=next_sequence(),
        )
        try:
            stored = await self._complete(item, message)
            if stored is not None:
                self._inbox.add_if_leading(stored)
        finally:
            self._work.pop((item.instance_id, item.key), None)

    async def _complete(self, item: WorkItem, message: StoredMessage) -> StoredMessage | None:
        """Group commit: results that finish while a write for their instance is under way
        go together in the next transaction (a fan-out's results mostly do)."""
        done: asyncio.Future[StoredMessage | None] = asyncio.get_running_loop().create_future()
        self._completions.setdefault(item.instance_id, []).append((item, message, done))
        if item.instance_id not in self._flushing:
            self._flushing.add(item.instance_id)
            self._inbox.spawn_write(self._flush_completions(item.instance_id))
        return await done

    async def _flush_completions(self, instance_id: str) -> None:
        try:
            while batch := self._completions.pop(instance_id, None):
                for start in range(0, len(batch), COMPLETIONS_PER_TRANSACTION):
                    chunk = batch[start:start + COMPLETIONS_PER_TRANSACTION]
                    try:
                        outcomes = await self._store.queue.complete_work_items(
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
