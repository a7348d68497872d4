"""Timer triggers: NCRONTAB or TimeSpan schedules, run on startup, past-due detection.

NCRONTAB as Azure reads it: six fields `{second} {minute} {hour} {day} {month}
{day-of-week}`, day-of-week 0-6 from Sunday, names allowed, and a day must match BOTH the
day-of-month and the day-of-week fields (NCrontab's rule; classic cron ORs them). A
schedule may also be a TimeSpan `hh:mm:ss` (a fixed interval) or `%SETTING%`, the name of
an app setting holding either form. Schedules are in UTC.

Each timer runs in its own loop: the next occurrence is computed after the previous
execution finished, so one timer never runs twice at once. With the schedule monitor
(`use_monitor`, on by default for schedules of a minute or more) the last and next
occurrences are kept in the storage account like the real host does; an occurrence that
was missed while the host was down runs once at start-up with `past_due` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.host_config import StartupError
from devhost.storage_account import StorageAccount

log = logging.getLogger("devhost.timers")

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?$")
MONITOR_CONTAINER = "azure-webjobs-hosts"


def _resolve_setting(schedule: str, function_name: str) -> str:
    text = schedule.strip()
    if len(text) > 2 and text.startswith("%") and text.endswith("%"):
        name = text[1:-1]
        value = os.environ.get(name)
        if not value:
            raise StartupError(
                f"timer function {function_name!r}: its schedule names app setting "
                f"{name!r}, which is not set"
            )
        return value.strip()
    return text


@dataclass(frozen=True)
class TimerSchedule:
    """A parsed schedule; `next_after` gives the first occurrence strictly after a moment."""

    expression: str
    interval: timedelta | None = None

    @classmethod
    def parse(cls, schedule: str, function_name: str) -> TimerSchedule:
        expression = _resolve_setting(schedule, function_name)
        timespan = _TIMESPAN.match(expression)
        if timespan:
            interval = timedelta(
                days=int(timespan.group("days") or 0),
                hours=int(timespan.group("h")),
                minutes=int(timespan.group("m")),
                seconds=int(timespan.group("s") or 0),
            )
            if interval <= timedelta(0):
                raise StartupError(f"timer function {function_name!r}: empty TimeSpan schedule")
            return cls(expression=expression, interval=interval)
        fields = expression.split()
        if len(fields) != 6:
            raise StartupError(
                f"timer function {function_name!r}: schedule {expression!r} must be an "
                "NCRONTAB expression with six fields {second} {minute} {hour} {day} {month} "
                "{day-of-week}, or a TimeSpan hh:mm:ss"
            )
        try:
            croniter(expression, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True)
        except (ValueError, KeyError) as error:
            raise StartupError(
                f"timer function {function_name!r}: schedule {expression!r} is not valid "
                f"NCRONTAB: {error}"
            ) from error
        return cls(expression=expression)

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        iterator = croniter(
            self.expression, moment, second_at_beginning=True, day_or=False
        )
        following: datetime = iterator.get_next(datetime)
        return following

    def shortest_interval(self, around: datetime) -> timedelta:
        first = self.next_after(around)
        return self.next_after(first) - first


class ScheduleMonitor:
    """Last/next occurrence of each timer in blob storage, as the real host keeps them."""

    def __init__(self, account: StorageAccount, host_id: str) -> None:
        self._container = account.blob_service().get_container_client(MONITOR_CONTAINER)
        self._host_id = host_id
        self._created = False

    def _blob(self, function_name: str) -> Any:
        return self._container.get_blob_client(
            f"timers/{self._host_id}/{function_name}/status"
        )

    def read(self, function_name: str) -> dict[str, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            status: dict[str, str] = json.loads(
                self._blob(function_name).download_blob().readall()
            )
            return status
        except ResourceNotFoundError:
            return None

    def write(self, function_name: str, status: dict[str, str]) -> None:
        from azure.core.exceptions import ResourceExistsError

        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._created = True
        self._blob(function_name).upload_blob(json.dumps(status), overwrite=True)


class TimerLocks:
    """One blob lease per timer, so hosts sharing a storage account never overlap a timer.

    The real host holds a singleton lock for each timer listener the same way; here the
    lease is taken per execution and renewed while it runs. A busy lock skips the
    occurrence (it is not queued).
    """

    LEASE_SECONDS = 15

    def __init__(self, account: StorageAccount, host_id: str) -> None:
        self._container = account.blob_service().get_container_client(MONITOR_CONTAINER)
        self._host_id = host_id

    def try_acquire(self, function_name: str) -> Any | None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        blob = self._container.get_blob_client(f"locks/{self._host_id}/{function_name}")
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        with contextlib.suppress(ResourceExistsError, HttpResponseError):
            blob.upload_blob(b"", overwrite=False)
        try:
            return blob.acquire_lease(lease_duration=self.LEASE_SECONDS)
        except HttpResponseError as error:
            if error.status_code == 409:
                return None
            raise

    @staticmethod
    def renew(lease: Any) -> None:
        lease.renew()

    @staticmethod
    def release(lease: Any) -> None:
        lease.release()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class TimerTrigger:
    function_name: str
    schedule: TimerSchedule
    run_on_startup: bool
    use_monitor: bool


class TimerRunner:
    """Runs every timer of the app until stopped."""

    def __init__(
        self,
        timers: list[TimerTrigger],
        invoke: Callable[[str, TimerRequest], Awaitable[Any]],
        monitor: ScheduleMonitor | None,
        locks: TimerLocks | None = None,
    ) -> None:
        self._timers = timers
        self._invoke = invoke
        self._monitor = monitor
        self._locks = locks
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for timer in self._timers:
            self._tasks.append(
                asyncio.create_task(self._run_logged(timer), name=f"timer {timer.function_name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _monitored(self, timer: TimerTrigger) -> bool:
        if self._monitor is None or not timer.use_monitor:
            return False
        # The real host skips monitoring for schedules that fire more than once a minute.
        return timer.schedule.shortest_interval(datetime.now(UTC)) >= timedelta(minutes=1)

    async def _read_status(self, timer: TimerTrigger) -> dict[str, str] | None:
        if not self._monitored(timer):
            return None
        try:
            return await asyncio.to_thread(self._monitor.read, timer.function_name)  # type: ignore[union-attr]
        except Exception as error:  # a monitor outage must not stop the timer
            log.warning("timer %s: reading schedule status failed: %s", timer.function_name, error)
            return None

    async def _write_status(self, timer: TimerTrigger, last: datetime, upcoming: datetime) -> None:
        if not self._monitored(timer):
            return
        status = {
            "Last": _iso(last), "Next": _iso(upcoming), "LastUpdated": _iso(datetime.now(UTC))
        }
        try:
            await asyncio.to_thread(self._monitor.write, timer.function_name, status)  # type: ignore[union-attr]
        except Exception as error:
            log.warning("timer %s: writing schedule status failed: %s", timer.function_name, error)

    async def _fire(
        self, timer: TimerTrigger, *, past_due: bool, last: datetime | None, upcoming: datetime
    ) -> None:
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": _iso(last) if last else None,
                "Next": _iso(upcoming),
                "LastUpdated": _iso(datetime.now(UTC)),
            },
            schedule={"AdjustForDST": True},
        )
        lease = None
        if self._locks is not None:
            try:
                lease = await self._acquire_lock(timer.function_name)
            except Exception as error:
                log.warning("timer %s: lock not taken (%s); running anyway",
                            timer.function_name, error)
            else:
                if lease is None:
                    log.info("timer %s: another host is running it; occurrence skipped",
                             timer.function_name)
                    return
        renewing = asyncio.create_task(self._keep_lease(lease)) if lease else None
        try:
            # The invoker has logged a failure; the schedule goes on.
            with contextlib.suppress(Exception):
                await self._invoke(timer.function_name, request)
        finally:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(TimerLocks.release, lease)

    async def _acquire_lock(self, function_name: str) -> Any | None:
        """The timer's lease, or None when another host holds it.

        A host stopped while the lease is being taken still releases it: the thread that
        takes it cannot be cancelled, and a lease left behind would make every other host
        skip this timer's occurrences until it expired.
        """
        assert self._locks is not None
        acquiring = asyncio.ensure_future(
            asyncio.to_thread(self._locks.try_acquire, function_name)
        )
        try:
            return await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                taken = await acquiring
                if taken is not None:
                    await asyncio.to_thread(TimerLocks.release, taken)
            raise

    @staticmethod
    async def _keep_lease(lease: Any) -> None:
        while True:
            await asyncio.sleep(TimerLocks.LEASE_SECONDS / 3)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(TimerLocks.renew, lease)

    async def _run_logged(self, timer: TimerTrigger) -> None:
        try:
            await self._run(timer)
        except Exception:
            log.exception("timer %s stopped after an internal error", timer.function_name)

    async def _run(self, timer: TimerTrigger) -> None:
        status = await self._read_status(timer)
        last = _parse_iso(status.get("Last")) if status else None
        recorded_next = _parse_iso(status.get("Next")) if status else None
        now = datetime.now(UTC)
        if recorded_next is not None and recorded_next < now:
            upcoming = timer.schedule.next_after(now)
            log.info("timer %s: occurrence %s was missed; running it now (past due)",
                     timer.function_name, _iso(recorded_next))
            await self._fire(timer, past_due=True, last=last, upcoming=upcoming)
            last = datetime.now(UTC)
            await self._write_status(timer, last, upcoming)
        elif timer.run_on_startup:
            upcoming = timer.schedule.next_after(now)
            await self._fire(timer, past_due=False, last=last, upcoming=upcoming)
        upcoming = timer.schedule.next_after(datetime.now(UTC))
        await self._write_status(timer, last or datetime.now(UTC), upcoming)
        while True:
            delay = (upcoming - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            after = timer.schedule.next_after(upcoming)
            await self._fire(timer, past_due=False, last=last, upcoming=after)
            last = upcoming
            # Occurrences that passed while the function ran are skipped, as in Azure.
            upcoming = timer.schedule.next_after(max(datetime.now(UTC), upcoming))
            await self._write_status(timer, last, upcoming)
