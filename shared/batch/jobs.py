"""The batch jobs an app gets when it declares none: the event queue's and the examples.

`asset-events` is always there: the event drain runs each batch through it. The example
`contacts` is there when enabled (BATCH_CONTACTS_ENABLED).
"""

from __future__ import annotations

from shared.batch.contacts import contacts_job
from shared.batch.job import BatchJob
from shared.config import AppSettings
from shared.events.asset_events_job import asset_events_job_from_settings


def default_batch_jobs(settings: AppSettings) -> list[BatchJob]:
    examples = [contacts_job(settings)] if settings.batch.contacts_enabled else []
    return [asset_events_job_from_settings(settings), *examples]
