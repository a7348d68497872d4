"""The thread pools the event queue's Table Storage calls run on (queue.py, settling.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

# Azure Storage serves one partition's rows from one server; a few requests at a time per
# process keep Azurite and the table's throughput limits both comfortable.
ROW_CALLS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="event-queue")
# Transactions of one batch side by side; their own pool, as each may use ROW_CALLS.
TRANSACTIONS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="event-queue-tx")
