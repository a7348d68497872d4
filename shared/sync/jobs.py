"""Every sync job of the app, and what a job needs at run time (state, sink).

To add a job: describe it in a module of its own (see asset_changes.py), give it a
settings section in shared/config/ (a field of `AppSettings`), and add one
`JobDefinition` to `JOB_DEFINITIONS`; the timer, the orchestration and the status
endpoint pick it up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.config import AppSettings
from shared.storage.clients import table_service
from shared.sync import asset_changes
from shared.sync.job import HttpSinkSpec, SalesforceSinkSpec, SyncJob
from shared.sync.sinks import HttpSink, SalesforceSink, Sink
from shared.sync.state import SyncState


@dataclass(frozen=True)
class JobDefinition:
    """A job's name and schedule setting (needed at import time, before settings are
    read, to declare its timer) and how to build the job from the settings."""

    name: str
    schedule_setting: str
    build: Callable[[AppSettings], SyncJob]


JOB_DEFINITIONS: tuple[JobDefinition, ...] = (
    JobDefinition(
        asset_changes.JOB_NAME, asset_changes.SCHEDULE_SETTING,
        lambda settings: asset_changes.asset_changes_job(
            settings.asset_changes_sync, settings.sync
        ),
    ),
)

# Job name -> the app setting that holds its NCRONTAB schedule (the timers' `%SETTING%`).
JOB_SCHEDULES = {job.name: job.schedule_setting for job in JOB_DEFINITIONS}


def sync_jobs(settings: AppSettings) -> dict[str, SyncJob]:
    jobs = {}
    for definition in JOB_DEFINITIONS:
        job = definition.build(settings)
        if (job.name, job.schedule_setting) != (definition.name, definition.schedule_setting):
            raise ValueError(
                f"sync job {job.name!r} (schedule {job.schedule_setting}) does not match its "
                f"definition {definition.name!r} (schedule {definition.schedule_setting})"
            )
        jobs[job.name] = job
    return jobs


def sync_state(settings: AppSettings) -> SyncState:
    return SyncState(
        table_service(settings.storage), settings.sync.watermark_table,
        settings.sync.runs_table, settings.sync.dead_letter_table,
    )


def sink_for(job: SyncJob, settings: AppSettings) -> Sink:
    """The job's sink; one Salesforce client per process so its token is reused."""
    if isinstance(job.sink, HttpSinkSpec):
        return HttpSink(
            job.sink.url, job.sink.authorization, header=job.sink.header,
            timeout=job.sink.timeout,
        )
    assert isinstance(job.sink, SalesforceSinkSpec)
    from shared.salesforce import process_client

    return SalesforceSink(process_client(settings.salesforce), job.sink.sobject,
                          job.sink.external_id_field)
