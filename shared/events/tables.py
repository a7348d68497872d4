"""The queue's three tables from the app's settings, one set of clients per process."""

from __future__ import annotations

import functools

from shared.config import AppSettings, StorageSettings
from shared.events.drain_state import DrainStateTable
from shared.events.queue import EventQueue
from shared.events.settings import EventQueueSettings
from shared.storage.clients import table_service
from shared.storage.tables import table_client


def event_queue(settings: AppSettings) -> EventQueue:
    return _event_queue(settings.storage, settings.events)


@functools.lru_cache(maxsize=4)
def _event_queue(storage: StorageSettings, events: EventQueueSettings) -> EventQueue:
    # One service client: its connection pool is shared by every request of the process.
    service = table_service(storage)
    state = DrainStateTable(table_client(service, events.state_table))
    return EventQueue(table_client(service, events.queue_table),
                      table_client(service, events.dead_letter_table), state)
