"""One store per concern of the sync state, over the three tables of one storage account;
one instance serves every job."""

from __future__ import annotations

from azure.data.tables import TableServiceClient

from shared.config import AppSettings
from shared.storage.clients import table_service
from shared.storage.tables import table_client
from shared.sync.state.dead_letters import DeadLetters
from shared.sync.state.lease import Leases
from shared.sync.state.runs import RunLog
from shared.sync.state.ticks import TickCounters
from shared.sync.state.watermarks import Watermarks


class SyncState:
    def __init__(
        self, service: TableServiceClient, watermark_table: str, runs_table: str,
        dead_letter_table: str,
    ) -> None:
        # The watermark, the lease and the tick counters are rows of one table per job.
        watermark_rows = table_client(service, watermark_table)
        self.watermarks = Watermarks(watermark_rows)
        self.lease = Leases(watermark_rows)
        self.ticks = TickCounters(watermark_rows)
        self.runs = RunLog(table_client(service, runs_table))
        self.dead_letters = DeadLetters(table_client(service, dead_letter_table))


def sync_state(settings: AppSettings) -> SyncState:
    return SyncState(
        table_service(settings.storage), settings.sync.watermark_table,
        settings.sync.runs_table, settings.sync.dead_letter_table,
    )
