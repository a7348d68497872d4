"""Batch jobs (seed 004): Mule-Batch semantics, one durable orchestration per instance.

    POST /api/batch-jobs/{job}[?instanceId=]  Load & dispatch: parse and check every record
        (400 problem+json naming each bad one), claim the instance id (409 if used or
        being staged: start.py), stage the blocks in Blob Storage (all or nothing),
        then start `batch_job`; 202.
    batch_job (orchestration.py):
        1. wait for the instance's turn (ORDERED_SEQUENTIAL: older instances ended)
        2. process: blocks through the steps, aggregator groups committed, at most
           max_concurrency activities at once (a sliding window over task_any);
           continue_as_new every BATCH_BLOCKS_PER_GENERATION blocks at a quiescent point
        3. on complete: failure report, the job's hook, final result; wake the next instance
    GET /api/batch-jobs/{job}[?limit=&after=]       a page of instances, newest first, with
                                                    status and counts
    GET /api/batch-jobs/{job}/{instanceId}          the BatchJobResult (live while running)
    GET /api/batch-jobs/{job}/{instanceId}/failures the failure report (CSV)
    batch_purge_finished (hourly timer)             rows of instances that ended without
        their finish step (failed, terminated) settled; finished instances past
        BATCH_INSTANCE_RETENTION, and STAGING ones that never started: row marked, blobs,
        orchestration history, row (shared/batch/retention.py)
    endpoints.py: the POST (start.py: claim, stage, start); reads.py: the GETs;
    retention.py: the purge.
"""

from orchestrators.batch import endpoints, reads, retention
from orchestrators.batch.orchestration import blueprint

__all__ = ["blueprint", "endpoints", "reads", "retention"]
