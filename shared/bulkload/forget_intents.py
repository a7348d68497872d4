"""The job-intent rows of a load that ended go (job_intents.py keeps one per part).

A row matters while its part's job may still be created: a try after a lost create reads
it, and other loads' tries read it to leave that part's job alone. Once the load has
ended and its summary is kept, no part of it is created again (a restart loads nothing),
and the jobs it recorded are no longer Open, so other loads never look for them either.
"""

from __future__ import annotations

import contextlib
import logging

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.bulkload.job_intents import JobIntents

log = logging.getLogger(__name__)


def forget_job_intents(intents: JobIntents, load_id: str) -> int:
    """Delete the rows of the load `load_id` (in every object's partition); how many went.

    A row left because storage failed here is harmless (it only takes space), so the
    failure is logged and the load's end goes on."""
    # Row keys are "{load id}|{level}|{part}" and a load id holds no "|": the range from
    # "{load id}|" up to "{load id}}" ("}" follows "|") is this load's rows and no other's.
    try:
        rows = list(intents.table.query_entities(
            "RowKey ge @first and RowKey lt @after",
            parameters={"first": f"{load_id}|", "after": f"{load_id}}}"},
            select=["PartitionKey", "RowKey"]))
        for row in rows:
            with contextlib.suppress(ResourceNotFoundError):  # gone in an earlier try
                intents.table.delete_entity(row["PartitionKey"], row["RowKey"])
    except AzureError:
        log.warning("bulk load %s: its job-intent rows were not deleted; they only take "
                    "space", load_id, exc_info=True)
        return 0
    return len(rows)
