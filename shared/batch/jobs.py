"""The batch jobs an app gets when it declares none: the enabled examples."""

from __future__ import annotations

from shared.batch.contacts import contacts_job
from shared.batch.job import BatchJob
from shared.config import AppSettings


def default_batch_jobs(settings: AppSettings) -> list[BatchJob]:
    return [contacts_job(settings)] if settings.batch.contacts_enabled else []
