"""Parent-child Bulk API 2.0 loads (seed 002) as one durable orchestration per load.

    POST /api/bulk-loads -> validate everything (400/413 problem+json), stage records in
        Blob Storage, start `bulk_load` with instance id = loadId (202 + status URLs);
        a loadId posted again answers that load's status (200) instead of loading twice,
        or 409 once that load's history was purged (a load id loads once, ever).
    bulk_load (orchestration.py): the levels top-down, each staged, submitted, polled
        and read; the endpoints are in endpoints.py.
    POST /api/bulk-loads/{loadId}/cancel -> the event `cancel`: at its next poll the load
        aborts its running jobs, skips the remaining levels and reports (outcome cancelled).
    GET /api/bulk-loads/{loadId}/failures -> failed and orphaned records as CSV.
"""

from orchestrators.bulk_load.endpoints import blueprint

__all__ = ["blueprint"]
