"""Timer locks across hosts: a host that stops never leaves a timer's lease behind."""

from __future__ import annotations

import asyncio
import uuid

from devhost.storage_account import StorageAccount
from devhost.timers import TimerLocks, TimerRunner


def test_a_host_stopped_while_taking_a_timer_lease_releases_it(azurite) -> None:
    account = StorageAccount.from_settings(
        environ={"AzureWebJobsStorage": azurite.connection_string}
    )
    assert account is not None
    locks = TimerLocks(account, host_id=f"locks{uuid.uuid4().hex[:8]}")
    runner = TimerRunner([], invoke=lambda *_: asyncio.sleep(0), monitor=None, locks=locks)

    async def stop_while_acquiring() -> None:
        acquiring = asyncio.create_task(runner._acquire_lock("nightly"))
        await asyncio.sleep(0)  # the lease is being taken in its thread
        acquiring.cancel()
        done = await asyncio.gather(acquiring, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)

    asyncio.run(stop_while_acquiring())

    # Another host gets the lease at once instead of skipping until it expires.
    lease = locks.try_acquire("nightly")
    assert lease is not None
    TimerLocks.release(lease)
