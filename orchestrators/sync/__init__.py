"""Scheduled change sync: one timer per job, the singleton run orchestration, status.

    timer (NCRONTAB from the job's schedule setting)
      -> tick: decide from the instance `sync-<job>` and the lease (shared/sync/lock.py),
         start / skip / terminate a stuck run
      -> sync_run orchestration: begin (bound, claim) -> pages, pages, ... -> end
         (or rounds of pages in N key partitions side by side, then one join)
         (each activity syncs pages for a time budget, checkpointing as it goes;
         continue_as_new every N activities; pages that failed as a whole are retried with
         durable-timer backoff, then the run fails with the watermark at its last checkpoint;
         more changed rows than the job's backlog threshold: Bulk API 2.0 jobs instead)
    POST /api/sync/{job}/run: a tick on demand, under the same lock (202 started, 409 not).
    GET /api/sync/{job}: lock state, progress, watermark, lag, last runs, tick counters.
    timers.py: the timers and the tick; orchestration.py: `sync_run` and its steps;
    endpoints.py: run now and status.
"""

from orchestrators.sync import endpoints, timers
from orchestrators.sync.orchestration import blueprint

__all__ = ["blueprint", "endpoints", "timers"]
