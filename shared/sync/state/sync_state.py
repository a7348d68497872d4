"""One store per concern of the sync state, over the three tables of one storage account;
one instance serves every job."""

from __future__ import annotations

import threading
from typing import Any

from azure.data.tables import TableServiceClient

from shared.config import AppSettings
from shared.storage.clients import table_service
from shared.storage.tables import RowAsRead, read_entities, table_clients
from shared.sync.state.dead_letters import DeadLetters
from shared.sync.state.lease import Leases
from shared.sync.state.partitions import PartitionPositions
from shared.sync.state.runs import RunLog
from shared.sync.state.ticks import TickCounters
from shared.sync.state.watermarks import Watermarks


class SyncState:
    def __init__(
        self, service: TableServiceClient, watermark_table: str, runs_table: str,
        dead_letter_table: str,
    ) -> None:
        # The watermark, the lease and the tick counters are rows of one table per job.
        watermark_rows, runs, dead_letters = table_clients(
            service, (watermark_table, runs_table, dead_letter_table))
        self._watermark_rows = watermark_rows
        self.watermarks = Watermarks(watermark_rows)
        self.partitions = PartitionPositions(watermark_rows)
        self.lease = Leases(watermark_rows)
        self.ticks = TickCounters(watermark_rows)
        self.runs = RunLog(runs)
        self.dead_letters = DeadLetters(dead_letters)

    def job_rows(self, job: str, *row_keys: str) -> dict[str, RowAsRead]:
        """Rows of the job's partition of the watermark table (WATERMARK_ROW, LOCK_ROW,
        TICKS_ROW) in one query, for a step that needs several of them."""
        return read_entities(self._watermark_rows, job, row_keys)


def sync_state(settings: AppSettings) -> SyncState:
    """The process's state stores for these settings, made once: every tick and activity of
    a run (and the checkpoint thread) shares their clients and so their connections, instead
    of opening new ones (a TLS handshake each, against Azure) every time."""
    key = (settings.storage, settings.sync.watermark_table, settings.sync.runs_table,
           settings.sync.dead_letter_table)
    with _states_lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = SyncState(table_service(settings.storage), *key[1:])
    return state


_states: dict[tuple[Any, str, str, str], SyncState] = {}
_states_lock = threading.Lock()
