"""The fields a record must carry to be created: from the org's describe, cached, or the
fields Salesforce documents as required when the org cannot be asked.

Checked before anything is staged, so a load without an account `Name` or a contact
`LastName` is refused at once (400, each record named) instead of failing in Salesforce
after its parents were loaded. An upsert may create its record, so it is checked too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shared.bulkload.request import LoadRequest, RecordProblem, escape_pointer

log = logging.getLogger(__name__)

DESCRIBE_TTL_SECONDS = 3600.0
# Required on create in every org (Salesforce's object reference), used when the org's
# describe cannot be read.
DOCUMENTED_REQUIRED: Mapping[str, frozenset[str]] = {
    "Account": frozenset({"Name"}),
    "Contact": frozenset({"LastName"}),
    "Lead": frozenset({"LastName", "Company"}),
    "Opportunity": frozenset({"Name", "StageName", "CloseDate"}),
    "OpportunityLineItem": frozenset({"Quantity"}),
    "Case": frozenset(),
    "Asset": frozenset({"Name"}),
}


class DescribingClient(Protocol):
    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any: ...


def required_from_describe(describe: Mapping[str, Any]) -> frozenset[str]:
    """Fields the org needs on create: not nillable, createable, not defaulted, not boolean
    (a checkbox is never null)."""
    return frozenset(
        field["name"] for field in describe.get("fields", [])
        if not field.get("nillable", True) and field.get("createable", False)
        and not field.get("defaultedOnCreate", False) and field.get("type") != "boolean"
    )


class RequiredFields:
    """Required fields per object, described once an hour per process."""

    def __init__(self, ttl: float = DESCRIBE_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._described: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def of(self, client: DescribingClient | None,
           objects: Iterable[str]) -> dict[str, frozenset[str]]:
        found = {}
        for sobject in objects:
            with self._lock:
                cached = self._described.get(sobject)
            if cached is not None and time.monotonic() - cached[0] < self.ttl:
                found[sobject] = cached[1]
                continue
            fields = self._describe(client, sobject)
            if fields is None:
                found[sobject] = DOCUMENTED_REQUIRED.get(sobject, frozenset())
                continue
            with self._lock:
                self._described[sobject] = (time.monotonic(), fields)
            found[sobject] = fields
        return found

    @staticmethod
    def _describe(client: DescribingClient | None, sobject: str) -> frozenset[str] | None:
        if client is None:
            return None
        try:
            return required_from_describe(
                client.request("GET", f"sobjects/{sobject}/describe").json())
        except Exception as error:  # Salesforce unreachable or the object unknown here
            log.warning("describe of %s failed (%s); checking its documented required "
                        "fields", sobject, error)
            return None


def missing_required_fields(request: LoadRequest,
                            required: Mapping[str, frozenset[str]]) -> list[RecordProblem]:
    """One problem per record and required field it leaves empty, pointing at it."""
    problems = []
    for level, records in zip(request.levels, request.records, strict=True):
        needed = sorted(required.get(level.object, frozenset())
                        - {level.parent_reference_field, level.external_id_field})
        if not needed:
            continue
        for record in records:
            for name in needed:
                value = record.fields.get(name)
                if value is None or (isinstance(value, str) and not value.strip()):
                    key = record.aliases.get(name, name)
                    problems.append(RecordProblem(
                        f"{record.pointer}/{escape_pointer(key)}", "REQUIRED_FIELD_MISSING",
                        f"{key} is required to create a {level.object} and is missing or "
                        "empty", level.name, record.external_id))
    return problems
