"""THE SEAM: what the drain does with a batch of events, as one function.

`apply_events(events, sources, salesforce)` takes a batch of event references and returns one
outcome per event, in order. For `Asset` events (seed 000's asset changes view):

- upsert: the view row of each id is read from the SQL source (one parameterised
  `IN (...)` query per 500 ids), mapped exactly as the sync job maps it
  (`asset_record`) and upserted into Salesforce `Asset` by `External_Id__c` through one
  aggregated sObject Collections call per 200 records;
- delete: the Assets are deleted by `External_Id__c`, 200 a call.

A record Salesforce rejects, or an id the view has no row for, fails alone; a source or
Salesforce failing as a whole fails every event it concerns. Errors are codes and
messages, never tracebacks (those go to the log).

The batch-job engine (issue 12) replaces this: the drain's step 2 then runs a batch job
over the same references, whose steps are these (read rows, map, aggregate 200 into one
upsert; delete) and whose per-record results become these outcomes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.events.messages import EventOutcome, EventRef
from shared.events.objects import EVENT_OBJECTS, EventObject
from shared.events.validation import Operation
from shared.salesforce.client import RecordOutcome, SalesforceClient
from shared.salesforce.errors import SalesforceError
from shared.sql.dialects import dialect_for_connection_string, dialect_named
from shared.sql.keyset import Statement
from shared.sql.source import SourceError, SqlSource
from shared.sync.asset_changes import COLUMNS, asset_record

log = logging.getLogger(__name__)

SOURCE_CHUNK = 500  # ids per query; SQL Server takes at most 2,100 parameters


@dataclass(frozen=True)
class ViewSource:
    """Where an object's rows are read: a view, its key column and the mapping to a record."""

    connection_string: str = field(repr=False)
    relation: str
    key_column: str
    columns: tuple[str, ...]
    map_record: Callable[[Mapping[str, Any]], dict[str, Any]]
    dialect: str | None = None
    login_timeout: int = 15
    query_timeout: int = 120

    def read_rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of `ids` by id (as text); an id without a row is absent."""
        if not self.connection_string:
            raise SourceError("SOURCE_NOT_CONFIGURED", "no source connection is configured "
                              "(SYNC_ASSET_CHANGES_SOURCE_CONNECTION)")
        dialect = (dialect_named(self.dialect) if self.dialect
                   else dialect_for_connection_string(self.connection_string))
        source = SqlSource(self.connection_string, self.relation, self.login_timeout,
                           self.query_timeout)
        select = ", ".join(dialect.quote(column) for column in self.columns)
        relation, key = dialect.quote_relation(self.relation), dialect.quote(self.key_column)
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), SOURCE_CHUNK):
            chunk = [int(value) for value in ids[start:start + SOURCE_CHUNK]]
            marks = ", ".join("?" for _ in chunk)
            statement = Statement(f"SELECT {select} FROM {relation} WHERE {key} IN ({marks})",
                                  tuple(chunk))
            for row in source.fetch_rows(statement):
                rows[str(row[self.key_column])] = row
        return rows


def asset_view_source(connection_string: str | None, view: str, dialect: str | None,
                      login_timeout: int, query_timeout: int) -> ViewSource:
    return ViewSource(connection_string or "", view, "Asset_ID", COLUMNS, asset_record,
                      dialect, login_timeout, query_timeout)


def apply_events(events: Sequence[EventRef], sources: Mapping[str, ViewSource],
                 salesforce: Callable[[], SalesforceClient]) -> list[EventOutcome]:
    """One outcome per event of `events`, in order (see the module's docstring).

    `salesforce()` gives the logged-in client; it raises ValueError when none is configured.
    """
    try:
        client = salesforce()
    except ValueError as error:
        return [EventOutcome(False, "SALESFORCE_NOT_CONFIGURED", str(error))] * len(events)
    outcomes: list[EventOutcome | None] = [None] * len(events)
    by_object: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        by_object.setdefault(event.object, []).append(index)
    for name, indexes in by_object.items():
        kind = EVENT_OBJECTS.get(name)
        source = sources.get(name)
        if kind is None or source is None:
            for index in indexes:
                outcomes[index] = EventOutcome(False, "UNKNOWN_OBJECT",
                                               f"no processing is defined for {name!r}")
            continue
        upserts = [i for i in indexes if events[i].operation is Operation.UPSERT]
        deletes = [i for i in indexes if events[i].operation is Operation.DELETE]
        for index, outcome in _guarded(_upsert, events, upserts, kind, source, client):
            outcomes[index] = outcome
        for index, outcome in _guarded(_delete, events, deletes, kind, source, client):
            outcomes[index] = outcome
    return [outcome or EventOutcome(False, "NOT_PROCESSED", "no outcome") for outcome in outcomes]


Step = Callable[[Sequence[EventRef], list[int], EventObject, ViewSource, SalesforceClient],
                list[tuple[int, EventOutcome]]]


def _guarded(step: Step, events: Sequence[EventRef], indexes: list[int], kind: EventObject,
             source: ViewSource, client: SalesforceClient) -> list[tuple[int, EventOutcome]]:
    """The step's outcomes; a failure of the whole step becomes every event's outcome."""
    if not indexes:
        return []
    try:
        return step(events, indexes, kind, source, client)
    except SourceError as error:
        failed = EventOutcome(False, error.code, error.message)
    except SalesforceError as error:
        failed = EventOutcome(False, error.error_code, f"Salesforce: {error.message}")
    except Exception as error:  # a defect must not stop the queue: its events fail alone
        log.exception("event processing: %s of %d %s events failed", step.__name__,
                      len(indexes), kind.name)
        failed = EventOutcome(False, "PROCESSING_FAILED",
                              f"{type(error).__name__} while processing (see the log)")
    return [(index, failed) for index in indexes]


def _upsert(events: Sequence[EventRef], indexes: list[int], kind: EventObject,
            source: ViewSource, client: SalesforceClient) -> list[tuple[int, EventOutcome]]:
    rows = source.read_rows([events[index].id for index in indexes])
    found = [index for index in indexes if events[index].id in rows]
    answers = [(index, EventOutcome(False, "SOURCE_ROW_MISSING",
                                    f"{source.relation} has no row with {source.key_column} "
                                    f"{events[index].id}"))
               for index in indexes if events[index].id not in rows]
    if not found:
        return answers
    records = [source.map_record(rows[events[index].id]) for index in found]
    results = client.upsert_records(kind.sobject, kind.external_id_field, records)
    return answers + [(index, _outcome(result)) for index, result in
                      zip(found, results, strict=True)]


def _delete(events: Sequence[EventRef], indexes: list[int], kind: EventObject,
            source: ViewSource, client: SalesforceClient) -> list[tuple[int, EventOutcome]]:
    values = [kind.external_id(events[index].id) for index in indexes]
    results = client.delete_records_by_external_id(kind.sobject, kind.external_id_field, values)
    return [(index, _outcome(result)) for index, result in zip(indexes, results, strict=True)]


def _outcome(result: RecordOutcome) -> EventOutcome:
    if result.success:
        return EventOutcome(True)
    code = result.errors[0][0] if result.errors else "REJECTED"
    message = "; ".join(message for _, message in result.errors) or "rejected by Salesforce"
    return EventOutcome(False, code, message)
