"""Every sync job of the app, and the sink a job delivers to at run time.

To add a job: describe it in a module of its own (see asset_changes.py: its
`JobDefinition` and the function that builds its `SyncJob`), give it a settings section in
shared/config/ (a field of `AppSettings` with a `schedule` setting), and list its
definition in `JOB_DEFINITIONS`; its timer, the orchestration and the status endpoint
pick it up by name.
"""

from __future__ import annotations

from shared.config import AppSettings
from shared.salesforce import process_client
from shared.sync import asset_changes
from shared.sync.job import HttpSinkSpec, JobDefinition, SyncJob
from shared.sync.sinks import HttpSink, SalesforceSink, Sink

JOB_DEFINITIONS: tuple[JobDefinition, ...] = (asset_changes.ASSET_CHANGES,)


def sync_jobs(settings: AppSettings) -> dict[str, SyncJob]:
    return {definition.name: definition.build(settings) for definition in JOB_DEFINITIONS}


def sink_for(job: SyncJob, settings: AppSettings) -> Sink:
    """The job's sink; one Salesforce client per process so its token is reused."""
    if isinstance(job.sink, HttpSinkSpec):
        return HttpSink(
            job.sink.url, job.sink.authorization, header=job.sink.header,
            timeout=job.sink.timeout,
        )
    return SalesforceSink(process_client(settings.salesforce), job.sink.sobject,
                          job.sink.external_id_field)
