"""sObject Collections: upsert by external id, delete by external id, 200 records a call."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.salesforce.query import QueryApi

COLLECTION_CHUNK = 200


@dataclass
class RecordOutcome:
    """What happened to one record of an sObject Collections upsert, by input position."""

    index: int
    external_id: str | None
    success: bool
    id: str | None
    created: bool | None
    errors: list[tuple[str, str]]


class SObjectCollectionsApi(QueryApi):
    def upsert_records(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool = False,
    ) -> list[RecordOutcome]:
        """Upsert by external id, 200 records a call; one outcome per input record, in order.

        With `all_or_none` each call of 200 is all-or-nothing, not the whole sequence.
        """
        return [
            _outcome(start + offset, record, result, external_id_field)
            for start, chunk, results in self._upsert_calls(
                sobject, external_id_field, records, all_or_none)
            for offset, (record, result) in enumerate(zip(chunk, results, strict=True))
        ]

    def upsert_failures(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool = False,
    ) -> list[RecordOutcome]:
        """Upsert as `upsert_records` does; the outcomes of the records that failed only,
        in order (an outcome per record written costs more than its call's JSON)."""
        return [
            _outcome(start + offset, chunk[offset], result, external_id_field)
            for start, chunk, results in self._upsert_calls(
                sobject, external_id_field, records, all_or_none)
            for offset, result in enumerate(results)
            if not result.get("success")
        ]

    def _upsert_calls(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool,
    ) -> Iterator[tuple[int, Sequence[Mapping[str, Any]], list[dict[str, Any]]]]:
        """(first index, records, their results) of each call of 200, one call at a time."""
        attributes = {"type": sobject}
        for start in range(0, len(records), COLLECTION_CHUNK):
            chunk = records[start : start + COLLECTION_CHUNK]
            payload = {
                "allOrNone": all_or_none,
                "records": [{"attributes": attributes, **_jsonable(record)} for record in chunk],
            }
            response = self.request(
                "PATCH",
                f"composite/sobjects/{sobject}/{external_id_field}",
                data=_ENCODER.encode(payload).encode(),
                headers=_JSON_HEADERS,
                expected=(200,),
            )
            results = response.json()
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ValueError(f"sObject Collections did not answer one result for each "
                                 f"of the call's {len(chunk)} records")
            yield start, chunk, results

    def delete_records_by_external_id(
        self, sobject: str, external_id_field: str, values: Sequence[str],
    ) -> list[RecordOutcome]:
        """Delete the records whose external id is one of `values`, 200 a call.

        Salesforce deletes by record id only: one SOQL query per 200 values finds the ids,
        one sObject Collections DELETE (not all-or-none) removes them. A value no record
        has is a success with `id` None: the record is gone either way, so a delete
        repeated after a crash changes nothing. One outcome per value, in order.
        """
        for name in (sobject, external_id_field):
            if not _API_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a Salesforce API name")
        outcomes: list[RecordOutcome] = []
        for start in range(0, len(values), COLLECTION_CHUNK):
            chunk = [str(value) for value in values[start : start + COLLECTION_CHUNK]]
            listed = ", ".join(_soql_string(value) for value in chunk)
            found: dict[str, str] = {}
            for record in self.query(f"SELECT Id, {external_id_field} FROM {sobject} "
                                     f"WHERE {external_id_field} IN ({listed})"):
                # Salesforce matches external ids without regard to case.
                found[str(record[external_id_field]).casefold()] = str(record["Id"])
            ids = list(dict.fromkeys(found[value.casefold()] for value in chunk
                                     if value.casefold() in found))
            results: dict[str, dict[str, Any]] = {}
            if ids:
                response = self.request("DELETE", "composite/sobjects",
                                        params={"ids": ",".join(ids), "allOrNone": "false"})
                results = dict(zip(ids, response.json(), strict=True))
            for offset, value in enumerate(chunk):
                record_id = found.get(value.casefold())
                result = results.get(record_id or "", {"success": True})
                errors = [(str(error.get("statusCode") or error.get("errorCode")),
                           str(error.get("message", "")))
                          for error in result.get("errors") or []]
                # Deleted since the query (by someone else, or a crash's first try): gone.
                gone = [code for code, _ in errors] == ["ENTITY_IS_DELETED"]
                outcomes.append(RecordOutcome(
                    index=start + offset, external_id=value,
                    success=bool(result.get("success")) or gone, id=record_id, created=None,
                    errors=[] if gone else errors))
        return outcomes


_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")


def _soql_string(value: str) -> str:
    """A SOQL string literal: backslash and quote escaped, as SOQL reads them."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_JSON_HEADERS = {"Content-Type": "application/json"}
# Compact, NaN refused, as requests' json= would send it but for the spaces.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_JSON_SCALARS = (str, float, int, bool)
_JSON_SCALAR_CLASSES = frozenset({str, float, int, bool, type(None)})


def _outcome(index: int, record: Mapping[str, Any], result: Mapping[str, Any],
             external_id_field: str) -> RecordOutcome:
    external_id = record.get(external_id_field)
    errors = result.get("errors")
    return RecordOutcome(
        index=index,
        external_id=None if external_id is None else str(external_id),
        success=bool(result.get("success")),
        id=result.get("id"),
        created=result.get("created"),
        errors=[
            (str(error.get("statusCode") or error.get("errorCode")), str(error.get("message", "")))
            for error in errors
        ] if errors else [],
    )


def _jsonable(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """JSON-safe field values: dates, datetimes and decimals as Salesforce reads them.
    A record whose values are all None or plain str, float, int or bool (a mapping's usual
    output) is returned as it is, not copied."""
    for value in record.values():
        if value.__class__ not in _JSON_SCALAR_CLASSES:
            break
    else:
        return record
    from shared.salesforce.bulk_csv import format_value

    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or value.__class__ in _JSON_SCALARS or isinstance(value, _JSON_SCALARS):
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = dict(_jsonable(value))
        else:
            out[key] = format_value(value)
    return out
