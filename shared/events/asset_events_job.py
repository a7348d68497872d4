"""The batch job `asset-events`: what the event drain does with each batch of events.

The drain stages a batch's event references as the records of one instance of this job
(`{"object", "id", "operation", "version"}`: never a payload, never a source row) and runs
the instance as its sub-orchestration (orchestrators/events.py):

    1. check    the record is an event this app processes (as POST /api/events checks
                it), or it fails here: an instance posted over HTTP gets no shortcut
    2. upsert   aggregator of 200 over the upsert events: the view rows of the group's ids
                read with one `IN (...)` query, mapped as the sync job maps them
                (`asset_record`) and upserted into `Asset` by `External_Id__c` with one
                sObject Collections call
    3. delete   aggregator of 200 over the delete events: the Assets deleted by
                `External_Id__c` (one query for their ids, one sObject Collections delete)

A record fails alone when the view has no row for its id or Salesforce refuses it; a
source or Salesforce failing as a whole fails every record of the group (the engine
records the exception's type and message, never a traceback). Both operations are
idempotent (an upsert reads the row as it is now; deleting an Asset that is gone
succeeds), so an event tried again after a crash or a failure changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from shared.batch.job import (
    Aggregator,
    BatchJob,
    BatchRecord,
    BatchStep,
    CommitFunction,
    SchedulingStrategy,
)
from shared.config import AppSettings
from shared.events.objects import EVENT_OBJECTS
from shared.events.validation import Event, Operation, parse_event
from shared.events.view_source import ViewSource, asset_view_source
from shared.salesforce.client import RecordOutcome, SalesforceClient, process_client

JOB_NAME = "asset-events"
GROUP_SIZE = 200  # records of one sObject Collections call


class InvalidEvent(ValueError):
    """The record is not an event this app processes (unknown object, bad id or operation)."""


class SourceRowMissing(LookupError):
    """The source view has no row for the event's id: there is nothing to upsert."""


class SalesforceNotConfigured(RuntimeError):
    """No Salesforce org is configured (SALESFORCE_*)."""


class SalesforceRejected(Exception):
    """Salesforce refused this record (its status codes and messages)."""


def event_of(record: BatchRecord) -> Event:
    parsed = parse_event(record.payload, record.index)
    if isinstance(parsed, Event):
        return parsed
    raise InvalidEvent("; ".join(f"{error.field}: {error.message}" for error in parsed))


def check_event(record: BatchRecord) -> None:
    event_of(record)


def _is_upsert(record: BatchRecord) -> bool:
    return record.payload.get("operation") == Operation.UPSERT.value


def _is_delete(record: BatchRecord) -> bool:
    return record.payload.get("operation") == Operation.DELETE.value


Outcomes = list[BaseException | None]


def upsert_events(sources: Mapping[str, ViewSource],
                  salesforce: Callable[[], SalesforceClient]) -> CommitFunction:
    """The upsert aggregator's commit: per object, one read of the rows, one upsert."""

    def commit(records: Sequence[BatchRecord]) -> Outcomes:
        client = _logged_in(salesforce)
        outcomes: Outcomes = [None] * len(records)
        for name, (positions, ids) in _by_object(records).items():
            kind, source = EVENT_OBJECTS[name], sources[name]
            rows = source.read_rows(ids)
            found = [(position, rows[record_id])
                     for position, record_id in zip(positions, ids, strict=True)
                     if record_id in rows]
            for position, record_id in zip(positions, ids, strict=True):
                if record_id not in rows:
                    outcomes[position] = SourceRowMissing(
                        f"{source.relation} has no row with {source.key_column} {record_id}")
            if not found:
                continue
            results = client.upsert_records(kind.sobject, kind.external_id_field,
                                            [source.map_record(row) for _, row in found])
            for (position, _), result in zip(found, results, strict=True):
                outcomes[position] = _failure(result)
        return outcomes

    return commit


def delete_events(salesforce: Callable[[], SalesforceClient]) -> CommitFunction:
    """The delete aggregator's commit: per object, the records deleted by external id."""

    def commit(records: Sequence[BatchRecord]) -> Outcomes:
        client = _logged_in(salesforce)
        outcomes: Outcomes = [None] * len(records)
        for name, (positions, ids) in _by_object(records).items():
            kind = EVENT_OBJECTS[name]
            values = [kind.external_id(record_id) for record_id in ids]
            results = client.delete_records_by_external_id(kind.sobject,
                                                           kind.external_id_field, values)
            for position, result in zip(positions, results, strict=True):
                outcomes[position] = _failure(result)
        return outcomes

    return commit


def _logged_in(salesforce: Callable[[], SalesforceClient]) -> SalesforceClient:
    try:
        return salesforce()
    except ValueError as error:  # no org configured: every record of the group fails
        raise SalesforceNotConfigured(str(error)) from None


def _by_object(records: Sequence[BatchRecord]) -> dict[str, tuple[list[int], list[str]]]:
    """Per object: the positions of its records in the group and their (checked) ids."""
    found: dict[str, tuple[list[int], list[str]]] = {}
    for position, record in enumerate(records):
        event = event_of(record)
        positions, ids = found.setdefault(event.object, ([], []))
        positions.append(position)
        ids.append(event.id)
    return found


def _failure(result: RecordOutcome) -> SalesforceRejected | None:
    if result.success:
        return None
    return SalesforceRejected("; ".join(f"{code}: {message}" for code, message in result.errors)
                              or "refused without a message")


def asset_events_job(sources: Mapping[str, ViewSource],
                     salesforce: Callable[[], SalesforceClient]) -> BatchJob:
    """The job over `sources` (one per event object) and the org `salesforce()` logs into.

    ROUND_ROBIN: the drain is a singleton that waits for each instance it starts, so
    instances never overlap; ORDERED_SEQUENTIAL would only add a turn check per batch.
    No failure limit: every event gets its outcome, and a failed one goes back to the
    queue (retried, then dead-lettered) rather than stopping the batch.
    """
    return BatchJob(
        name=JOB_NAME,
        block_size=GROUP_SIZE,
        max_failed_records=-1,
        scheduling_strategy=SchedulingStrategy.ROUND_ROBIN,
        max_concurrency=4,
        steps=(
            BatchStep("check", check_event),
            BatchStep("upsert", accept_expression=_is_upsert,
                      aggregator=Aggregator(size=GROUP_SIZE,
                                            commit=upsert_events(sources, salesforce))),
            BatchStep("delete", accept_expression=_is_delete,
                      aggregator=Aggregator(size=GROUP_SIZE, commit=delete_events(salesforce))),
        ),
        description="event queue batches -> check -> upsert Asset from the asset changes "
        "view (groups of 200) | delete Asset by External_Id__c (groups of 200)",
    )


def asset_events_job_from_settings(settings: AppSettings) -> BatchJob:
    """The job as the app runs it: the asset changes source, the configured org."""
    section, sync = settings.asset_changes_sync, settings.sync
    sources = {"Asset": asset_view_source(section.connection, section.view, section.dialect,
                                          sync.source_login_timeout,
                                          sync.source_query_timeout)}
    return asset_events_job(sources, lambda: process_client(settings.salesforce))
