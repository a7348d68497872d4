"""The example batch job `contacts` (seed 004): contacts posted as records into Salesforce.

    1. validate     required fields and a plausible email; a bad record fails here
    2. map          to Contact fields (External_Id__c carries the caller's id)
    3. upsert       aggregator of 200: sObject Collections upsert of Contact by
                    External_Id__c; a record Salesforce refuses fails alone
    4. dead-letter  ONLY_FAILURES: each failed record, with why, into the dead-letter table
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.batch.job import (
    AcceptPolicy,
    Aggregator,
    BatchJob,
    BatchRecord,
    BatchStep,
    CommitFunction,
    SchedulingStrategy,
    StepFunction,
)
from shared.config import AppSettings
from shared.log_fields import log_event
from shared.storage.clients import table_service
from shared.storage.tables import safe_key, table_client

JOB_NAME = "contacts"
SOBJECT = "Contact"
EXTERNAL_ID_FIELD = "External_Id__c"
REQUIRED = ("externalId", "lastName", "email")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")

log = logging.getLogger(__name__)


class InvalidContact(ValueError):
    """A posted contact misses a required field or has a malformed one."""


class SalesforceRejected(Exception):
    """Salesforce refused this record of an upsert (its status code and message)."""


def validate_contact(record: BatchRecord) -> None:
    payload = record.payload
    missing = [name for name in REQUIRED if not str(payload.get(name) or "").strip()]
    if missing:
        raise InvalidContact(f"missing {', '.join(missing)}")
    if not _EMAIL.fullmatch(str(payload["email"]).strip()):
        raise InvalidContact(f"email {str(payload['email'])[:80]!r} is not an email address")
    if len(str(payload["externalId"])) > 80:
        raise InvalidContact("externalId is longer than 80 characters")


def map_contact(record: BatchRecord) -> dict[str, Any]:
    payload = record.payload
    mapped = {
        EXTERNAL_ID_FIELD: str(payload["externalId"]).strip(),
        "LastName": str(payload["lastName"]).strip(),
        "FirstName": str(payload.get("firstName") or "").strip() or None,
        "Email": str(payload["email"]).strip(),
        "Phone": str(payload.get("phone") or "").strip() or None,
    }
    return {name: value for name, value in mapped.items() if value is not None}


def upsert_contacts(settings: AppSettings) -> CommitFunction:
    def commit(records: Sequence[BatchRecord]) -> list[BaseException | None]:
        from shared.salesforce import process_client

        outcomes = process_client(settings).upsert_records(
            SOBJECT, EXTERNAL_ID_FIELD, [record.payload for record in records])
        return [None if outcome.success else SalesforceRejected(
            "; ".join(f"{code}: {message}" for code, message in outcome.errors)
            or "refused without a message") for outcome in outcomes]

    return commit


def dead_letter_writer(settings: AppSettings) -> StepFunction:
    def write_dead_letter(record: BatchRecord) -> None:
        table = table_client(table_service(settings.storage), settings.batch.dead_letter_table)
        step, kind, message = (record.failures[0].step, record.failures[0].exception_type,
                               record.failures[0].message)
        # Upsert by (instance, index): a block re-run after a crash writes the same row.
        table.upsert_entity({
            "PartitionKey": safe_key(f"{JOB_NAME}-{record.instance_id}"),
            "RowKey": f"{record.index:010d}", "Step": step, "ExceptionType": kind,
            "Message": message, "Record": json.dumps(record.payload)[:30_000]})

    return write_dead_letter


def log_result(result: Mapping[str, Any]) -> None:
    log_event(log, "batch contacts completed", batch_job="contacts",
              instance_id=result["batchJobInstanceId"], status=result["status"],
              total_records=result["totalRecords"],
              successful_records=result["successfulRecords"],
              failed_records=result["failedRecords"])


def contacts_job(settings: AppSettings) -> BatchJob:
    return BatchJob(
        name=JOB_NAME,
        block_size=100,
        max_failed_records=-1,
        scheduling_strategy=SchedulingStrategy.ORDERED_SEQUENTIAL,
        max_concurrency=4,
        steps=(
            BatchStep("validate", validate_contact),
            BatchStep("map", map_contact),
            BatchStep("upsert", aggregator=Aggregator(size=200,
                                                      commit=upsert_contacts(settings))),
            BatchStep("dead-letter", dead_letter_writer(settings),
                      accept_policy=AcceptPolicy.ONLY_FAILURES),
        ),
        on_complete=log_result,
        description="contacts -> validate -> map -> upsert Contact by External_Id__c "
        "(groups of 200) -> dead-letter the failed ones",
    )
