"""The drain's signal on Azurite under a burst of posters: every mark still stops a drain
that looked before it from finishing, and the burst costs each poster a few requests."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient

from shared.events.drain_state import DrainState, DrainStateTable
from shared.storage.tables import table_client

NOW = datetime(2025, 10, 8, 9, 0, tzinfo=UTC)
POSTERS = 30


def counted_state(azurite) -> tuple[DrainStateTable, list[int]]:
    """A signal table whose client counts the requests it sends."""
    requests = [0]
    lock = threading.Lock()

    def count(_request) -> None:
        with lock:
            requests[0] += 1

    service = TableServiceClient.from_connection_string(azurite.connection_string,
                                                        raw_request_hook=count)
    return DrainStateTable(table_client(service, f"S{uuid.uuid4().hex[:10]}")), requests


def test_a_burst_of_posters_marks_the_signal_with_a_few_requests_each(azurite):
    state, requests = counted_state(azurite)
    drain_look = state.read_signal()  # a drain read the signal, then looked at the queue
    requests[0] = 0

    with ThreadPoolExecutor(max_workers=POSTERS) as pool:
        before = list(pool.map(lambda _: state.mark_running(NOW), range(POSTERS)))

    assert [signal.state for signal in before].count(DrainState.IDLE) == 1  # one starts it
    assert state.read_signal().state is DrainState.RUNNING
    assert not state.declare_idle(drain_look.etag, NOW)  # so that drain looks again
    assert requests[0] <= 4 * POSTERS, f"{requests[0]} requests for {POSTERS} marks"
