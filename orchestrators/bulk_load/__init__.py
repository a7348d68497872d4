"""Parent-child Bulk API 2.0 loads (seed 002) as one durable orchestration per load.

    POST /api/bulk-loads -> validate everything (400/413 problem+json), stage records in
        Blob Storage, start `bulk_load` with instance id = loadId (202 + the load's URLs);
        `?validateOnly=true` answers the plan and starts nothing. A loadId posted again
        answers that load's status (200), 409 when other records are posted under it or
        once its history was purged (a load id loads once, ever).
    bulk_load (orchestration.py): the levels top-down, each staged, submitted, polled
        and read (level_steps.py; the state they share: run_state.py).
    endpoints.py: start, retry-failures, cancel; reads.py: list, status, results, failures.
    GET /api/bulk-loads[?status=&since=&limit=&after=] -> recent loads, newest first, paged.
    GET /api/bulk-loads/{loadId} -> progress per level (counts, percent), then the summary.
    GET /api/bulk-loads/{loadId}/results -> loaded records with their Salesforce ids, CSV.
    GET /api/bulk-loads/{loadId}/failures -> failed and orphaned records as CSV.
    POST /api/bulk-loads/{loadId}/retry-failures -> a new load of those, linked to it.
    POST /api/bulk-loads/{loadId}/cancel -> the event `cancel`: at its next poll the load
        aborts its running jobs, skips the remaining levels and reports (outcome cancelled).
"""

from orchestrators.bulk_load import endpoints, reads
from orchestrators.bulk_load.orchestration import ORCHESTRATOR, blueprint

__all__ = ["ORCHESTRATOR", "blueprint", "endpoints", "reads"]
