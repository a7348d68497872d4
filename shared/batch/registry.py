"""The batch jobs this app runs, by name.

An app declares its jobs once, at import (start-up), with `register_batch_jobs(...)`;
without that, the jobs of `shared.batch.jobs` (the example, when enabled) are used. Each
job gets its deployment's knob overrides (`BATCH_<JOB>_...`), validated here, so a bad
override stops the app at start-up.
"""

from __future__ import annotations

import os
import threading

from shared.batch.job import BatchJob
from shared.batch.settings import job_with_overrides

_jobs: dict[str, BatchJob] = {}
_declared = threading.Event()
_lock = threading.Lock()


def register_batch_jobs(*jobs: BatchJob) -> None:
    """Declare the app's batch jobs (with their setting overrides applied and checked)."""
    overridden = [job_with_overrides(job, os.environ) for job in jobs]
    names = [job.name for job in overridden]
    if len(set(names)) != len(names):
        raise ValueError(f"batch job names must be unique, got {names}")
    with _lock:
        _jobs.clear()
        _jobs.update({job.name: job for job in overridden})
        _declared.set()


def batch_jobs() -> dict[str, BatchJob]:
    if _declared.is_set():
        with _lock:
            return dict(_jobs)
    from shared.batch.jobs import default_batch_jobs
    from shared.config import app_settings

    register_batch_jobs(*default_batch_jobs(app_settings()))
    with _lock:
        return dict(_jobs)
