"""Every sync job of the app, and the sink a job delivers to at run time.

To add a job: describe it in a module of its own (see asset_changes.py: its
`JobDefinition` and the function that builds its `SyncJob`), give it a settings section in
shared/config/ (a field of `AppSettings` with a `schedule` setting), and list its
definition in `JOB_DEFINITIONS`; its timer, the orchestration and the status endpoint
pick it up by name.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.config import AppSettings
from shared.salesforce import process_client
from shared.sync import asset_changes
from shared.sync.job import HttpSinkSpec, JobDefinition, SalesforceSinkSpec, SyncJob
from shared.sync.sinks import HttpSink, SalesforceSink, Sink

JOB_DEFINITIONS: tuple[JobDefinition, ...] = (asset_changes.ASSET_CHANGES,)


def sync_jobs(settings: AppSettings) -> dict[str, SyncJob]:
    """Every job, built from `settings`; built once for the process's settings object (every
    POST and activity asks), not to be changed by the caller."""
    built = _built.get(id(settings))
    if built is not None and built[0] is settings:
        return built[1]
    jobs = {definition.name: definition.build(settings) for definition in JOB_DEFINITIONS}
    if len(_built) > 4:  # tests load many settings; a process, one
        _built.clear()
    _built[id(settings)] = (settings, jobs)
    return jobs


def sink_for(job: SyncJob, settings: AppSettings) -> Sink:
    """The job's sink, one per process and job description: its HTTP session (or the
    process's Salesforce client, whose token is reused) and its call threads serve every
    page activity of the process."""
    parallel = settings.sync.salesforce_parallel_calls
    key = (job.sink, parallel, settings.salesforce if isinstance(job.sink, SalesforceSinkSpec)
           else None)
    with _sinks_lock:
        sink = _sinks.get(key)
        if sink is None:
            sink = _sinks[key] = _new_sink(job.sink, settings, parallel)
    return sink


def _new_sink(spec: HttpSinkSpec | SalesforceSinkSpec, settings: AppSettings,
              parallel: int) -> Sink:
    if isinstance(spec, HttpSinkSpec):
        return HttpSink(spec.url, spec.authorization, header=spec.header, timeout=spec.timeout)
    return SalesforceSink(process_client(settings.salesforce), spec.sobject,
                          spec.external_id_field, parallel_calls=parallel)


# By the settings object's id, kept with it: an id is reused only once the object is gone.
_built: dict[int, tuple[AppSettings, dict[str, SyncJob]]] = {}
_sinks: dict[Any, Sink] = {}
_sinks_lock = threading.Lock()
