"""Every sync job of the app, and what a job needs at run time (state, sink).

To add a job: describe it (see asset_changes.py), give it a settings section in
shared/config.py, and list it in `JOB_SCHEDULES` and `sync_jobs`; the timer, the
orchestration and the status endpoint pick it up by name.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.config import AppSettings
from shared.storage.clients import table_service
from shared.sync.asset_changes import JOB_NAME as ASSET_CHANGES
from shared.sync.asset_changes import asset_changes_job
from shared.sync.job import HttpSinkSpec, SalesforceSinkSpec, SyncJob
from shared.sync.sinks import HttpSink, SalesforceSink, Sink
from shared.sync.state import SyncState

# Job name -> the app setting that holds its NCRONTAB schedule. Timers are declared at
# import time, before settings are validated, so this map does not need settings.
JOB_SCHEDULES = {ASSET_CHANGES: "SYNC_ASSET_CHANGES_SCHEDULE"}

_salesforce_clients: dict[Any, Any] = {}
_clients_lock = threading.Lock()


def sync_jobs(settings: AppSettings) -> dict[str, SyncJob]:
    jobs = [asset_changes_job(settings.asset_changes_sync, settings.sync)]
    return {job.name: job for job in jobs}


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
    from shared.salesforce import SalesforceClient

    key = settings.salesforce
    with _clients_lock:
        client = _salesforce_clients.get(key)
        if client is None:
            client = SalesforceClient.from_settings(settings.salesforce)
            _salesforce_clients[key] = client
    return SalesforceSink(client, job.sink.sobject, job.sink.external_id_field)
