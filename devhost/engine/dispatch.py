"""Who runs the task hub and how: the lease, the leader's loops, rows put right (lost
starts sent again, ends a row missed written).

The host holding the lease loads every stored message and work item, then runs a pump
(due timers, messages other hosts wrote, a periodic look for rows to put right) and
`max_concurrent_orchestrators` workers that run one episode at a time per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from devhost.engine.activities import ActivityPool
from devhost.engine.episode import EpisodeRunner
from devhost.engine.inbox import Inbox
from devhost.engine.instance import status_fields
from devhost.engine.interface import TERMINAL_STATES
from devhost.engine.lease import TaskHubLease
from devhost.engine.messages import as_utc, start_key, start_message
from devhost.engine.store import ConcurrentUpdate, TaskHubStore

log = logging.getLogger("devhost.engine")

POLL_SECONDS = 1.0  # how often the leader looks for messages written by other hosts
LEASE_RENEW_SECONDS = 5.0
LEASE_RETRY_SECONDS = 2.0
LOST_START_SWEEP_SECONDS = 30.0


class Dispatcher:
    def __init__(
        self, store: TaskHubStore, lease: TaskHubLease, inbox: Inbox,
        activities: ActivityPool, episodes: EpisodeRunner, max_orchestrators: int,
    ) -> None:
        self._store = store
        self._lease = lease
        self._inbox = inbox
        self._activities = activities
        self._episodes = episodes
        self._max_orchestrators = max_orchestrators
        self._lease_task: asyncio.Task[None] | None = None
        self._leader_tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if await self._lease.try_acquire():
            await self._lead()
        self._lease_task = asyncio.create_task(self._keep_lease(), name="devhost-engine-lease")

    async def stop(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        await self._step_down()
        await self._lease.release()

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
        self._inbox.reset()
        self._activities.reset()
        self._episodes.reset()
        messages, work_items = await self._store.queue.all_pending()
        for message in messages:
            self._inbox.add(message)
        for item in work_items:
            self._activities.schedule(item)
        await self.recover_lost_starts()
        self._leader_tasks = [asyncio.create_task(self._pump(), name="devhost-engine-pump")]
        self._leader_tasks += [
            asyncio.create_task(self._orchestration_worker(), name=f"devhost-engine-orch-{n}")
            for n in range(self._max_orchestrators)
        ]

    async def _step_down(self) -> None:
        if self._inbox.background:
            await asyncio.wait(list(self._inbox.background), timeout=5)
        tasks = self._leader_tasks + list(self._activities.tasks)
        self._leader_tasks = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._activities.tasks.clear()

    async def _pump(self) -> None:
        """Wake instances whose timers are due; pick up messages other hosts wrote."""
        next_poll = time.monotonic() + POLL_SECONDS
        next_sweep = time.monotonic() + LOST_START_SWEEP_SECONDS
        while True:
            self._inbox.fire_due_timers()
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL_SECONDS
                try:
                    await self._inbox.pick_up_stored()
                except Exception:
                    log.exception("reading the task hub messages failed")
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + LOST_START_SWEEP_SECONDS
                try:
                    await self.recover_lost_starts()
                except Exception:
                    log.exception("looking for instances that lost their start failed")
            timeout = max(0.0, next_poll - time.monotonic())
            to_timer = self._inbox.seconds_to_next_timer()
            if to_timer is not None:
                timeout = min(timeout, to_timer)
            self._inbox.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._inbox.wakeup.wait(), timeout)

    async def _orchestration_worker(self) -> None:
        while True:
            instance_id = await self._inbox.next_ready()
            try:
                while True:
                    self._inbox.start_episode(instance_id)
                    try:
                        progressed = await self._episodes.run(instance_id)
                    except ConcurrentUpdate:
                        log.warning("instance %s changed under this host; reloading", instance_id)
                        self._episodes.forget(instance_id)
                        progressed = True
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("episode of instance %s failed; retrying soon", instance_id)
                        self._episodes.forget(instance_id)
                        await asyncio.sleep(1.0)
                        progressed = True
                    if not progressed and not self._inbox.notified_again(instance_id):
                        break
            finally:
                self._inbox.done_with(instance_id)

    # -- instance rows a host stopped short of: lost starts, ends not shown --

    async def recover_lost_starts(self) -> None:
        for row in await self._store.query_instances(
            "RuntimeStatus eq @pending or RuntimeStatus eq @running "
            "or RuntimeStatus eq @suspended",
            {"pending": "Pending", "running": "Running", "suspended": "Suspended"},
        ):
            await self.recover_lost_start(row)

    async def recover_lost_start(self, row: dict[str, Any]) -> None:
        """Put right the row of an instance whose host stopped between two writes.

        A Pending row without its start message: the message is rebuilt from the row (same
        key, same event), so if it was not lost after all, the copy is recognised and
        dropped. A row behind its committed history (the row is written after it): the
        sentinel carries the status, which the row takes unless it changed since it was
        read. For a Running or Suspended row only when the history ended: that episode's
        messages are gone, so no episode would write the row again (a busy instance's
        next episode does)."""
        execution_id = row.get("ExecutionId")
        runtime_status = row.get("RuntimeStatus")
        if runtime_status in TERMINAL_STATES or not execution_id:
            return
        instance_id = row["PartitionKey"]
        sentinel = await self._store.read_sentinel(instance_id)
        if sentinel is not None and sentinel.get("ExecutionId") == execution_id:
            ended = sentinel.get("RuntimeStatus") in TERMINAL_STATES
            if (runtime_status == "Pending" or ended) and row.get("etag"):
                if ended:
                    log.warning("instance %s ended while its row says %s (a host stopped "
                                "between its history and its row); writing the end",
                                instance_id, runtime_status)
                await self._store.write_instance(
                    {"PartitionKey": instance_id, "RowKey": "", "ExecutionId": execution_id,
                     **status_fields(sentinel)}, etag=row["etag"])
            return
        if runtime_status != "Pending" or await self._store.queue.has_message(
                instance_id, start_key(execution_id)):
            return
        log.warning("instance %s was Pending without its start message (a host stopped "
                    "between the two writes); sending it again", instance_id)
        await self._inbox.send(start_message(
            instance_id, row.get("Name", ""), row.get("Input"), execution_id=execution_id,
            parent=None, started_at=as_utc(row.get("CreatedTime")),
        ))
