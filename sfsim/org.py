"""The simulated org's records and the writes that change them.

Every write (REST, sObject Collections, Bulk API 2.0) goes through `Org.write`: its values
become stored values in `sfsim.record_values`, then the write checks required and unique
fields and raises `RecordError` with the code Salesforce uses (`REQUIRED_FIELD_MISSING`,
`DUPLICATE_VALUE`, `INVALID_CROSS_REFERENCE_KEY`, ...). Writes can be undone as a group,
which is how all-or-none requests roll back.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sfsim.record_values import RecordError, resolve_values
from sfsim.schema import IdFactory, ObjectDef, default_objects, looks_like_id, to_18

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")


@dataclass
class WriteResult:
    id: str
    created: bool


_stamp: tuple[int, str] = (0, "")  # the last millisecond asked for and its text


def now_text() -> str:
    """Now in Salesforce's form, 2025-01-31T12:00:00.000+0000.

    Every record written asks for it, and records of one call mostly share a millisecond:
    its text is made once per millisecond.
    """
    global _stamp
    millisecond = time.time_ns() // 1_000_000
    last, text = _stamp
    if millisecond != last:
        moment = dt.datetime.fromtimestamp(millisecond / 1000, dt.UTC)
        text = moment.isoformat(timespec="milliseconds")[:-6] + "+0000"
        _stamp = (millisecond, text)
    return text


class Org:
    def __init__(self, objects: Mapping[str, ObjectDef] | None = None) -> None:
        self.lock = threading.RLock()
        self.ids = IdFactory()
        self.objects: dict[str, ObjectDef] = dict(objects or default_objects())
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # Counts every change (or attempt) to the records, under the lock: one who read
            # the org and finds the count unchanged later knows that no record changed.
            self.generation += 1
            self.records: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in self.objects}
            # (object, field) -> value -> id, for every unique field (external ids included).
            self.unique_index: dict[tuple[str, str], dict[Any, str]] = {}
            # Deleted id -> (object, when): what getDeleted reports and updates refuse.
            self.deleted: dict[str, tuple[str, str]] = {}

    def to_state(self) -> dict[str, Any]:
        """The org as JSON-ready data (schema, records, deleted ids, the id counter).

        Records are shared, not copied: a write replaces a record's dict, never changes it.
        """
        with self.lock:
            return {
                "objects": [o.to_json() for o in self.objects.values()],
                "records": {name: list(store.values()) for name, store in self.records.items()},
                "deleted": {record_id: list(entry) for record_id, entry in self.deleted.items()},
                "next_id": self.ids.next_number,
            }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Replace the org by the one `to_state` saved."""
        definitions = [ObjectDef.from_json(body) for body in saved["objects"]]
        deleted = {str(record_id): (str(sobject), str(when))
                   for record_id, (sobject, when) in saved["deleted"].items()}
        with self.lock:
            self.objects = {definition.name: definition for definition in definitions}
            self.reset()
            for sobject, records in saved["records"].items():
                obj = self.objects[sobject]
                for record in records:
                    self.records[sobject][str(record["Id"])] = record
                    self._index(obj, record)
            self.deleted = deleted
            self.ids.next_number = int(saved["next_id"])

    def put_record(self, sobject: str, record: Mapping[str, Any]) -> None:
        """Store a record under its own `Id`, as is: the org's built-in records."""
        obj = self.objects[sobject]
        stamp = now_text()
        with self.lock:
            self.generation += 1
            old = self.records[sobject].get(record["Id"])
            if old is not None:
                self._unindex(obj, old)
            stored = {"IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp,
                      "SystemModstamp": stamp, **record}
            self.records[sobject][record["Id"]] = stored
            self._index(obj, stored)

    def define_object(self, definition: ObjectDef) -> None:
        with self.lock:
            self.objects[definition.name] = definition
            self.records.setdefault(definition.name, {})

    def object_named(self, name: str) -> ObjectDef | None:
        found = self.objects.get(name)
        if found is not None:
            return found
        return next((o for o in self.objects.values() if o.name.lower() == name.lower()), None)

    def object_for_id(self, record_id: str) -> ObjectDef | None:
        return next((o for o in self.objects.values() if o.key_prefix == record_id[:3]), None)

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        return self.records.get(sobject, {}).get(to_18(record_id)) if looks_like_id(
            record_id
        ) else None

    def all_records(self, sobject: str) -> Iterator[dict[str, Any]]:
        with self.lock:
            return iter(list(self.records.get(sobject, {}).values()))

    def find_by_unique(self, sobject: str, field: str, value: Any) -> str | None:
        index = self.unique_index.get((sobject, field))
        if index is None:
            return None
        return index.get(value.lower() if value.__class__ is str else _unique_key(value))

    # -- writing ----------------------------------------------------------------------

    def write(
        self,
        sobject: str,
        operation: str,
        values: Mapping[str, Any],
        external_id_field: str | None = None,
        from_csv: bool = False,
        undo: list | None = None,
    ) -> WriteResult:
        """Apply one record; raise RecordError when Salesforce would refuse it.

        From CSV an empty value is left unchanged and `#N/A` clears the field; from JSON a
        missing key is left unchanged and null clears the field.
        """
        obj = self.objects[sobject]
        with self.lock:
            self.generation += 1
            if operation in ("delete", "hardDelete"):
                return self._delete(obj, values, undo)
            changes, record_id = resolve_values(self, obj, values, from_csv)
            if operation == "insert":
                if record_id:
                    raise RecordError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        "cannot specify Id in an insert call",
                        ["Id"],
                    )
                return self._save(obj, None, changes, undo)
            if operation == "update":
                return self._save(obj, self._existing_id(obj, record_id), changes, undo)
            if operation == "upsert":
                return self._upsert(obj, external_id_field or "Id", changes, record_id, undo)
            raise ValueError(f"unknown operation {operation}")

    def _upsert(
        self,
        obj: ObjectDef,
        external_id_field: str,
        changes: dict[str, Any],
        record_id: str | None,
        undo: list | None,
    ) -> WriteResult:
        if external_id_field.lower() == "id":
            if record_id:
                return self._save(obj, self._existing_id(obj, record_id), changes, undo)
            return self._save(obj, None, changes, undo)
        field = obj.field_named(external_id_field)
        assert field is not None
        value = changes.get(field.name)
        if value in (None, ""):
            raise RecordError(
                "MISSING_ARGUMENT", f"{field.name} not specified", [field.name]
            )
        existing = self.find_by_unique(obj.name, field.name, value)
        if record_id and existing and to_18(record_id) != existing:
            raise RecordError(
                "INVALID_FIELD",
                f"The Id field should not be specified in the sobject data when upserting "
                f"by {field.name}",
                ["Id"],
            )
        return self._save(obj, existing, changes, undo, unique_checked=field.name)

    def _existing_id(self, obj: ObjectDef, record_id: str | None) -> str:
        if not record_id:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if not looks_like_id(record_id):
            raise RecordError("MALFORMED_ID", f"Record Id: id value of incorrect type: "
                              f"{record_id}", ["Id"])
        full = to_18(record_id)
        if full in self.deleted:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        if full not in self.records[obj.name]:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        return full

    def _delete(self, obj: ObjectDef, values: Mapping[str, Any], undo: list | None) -> WriteResult:
        record_id = next((str(v) for k, v in values.items() if k.lower() == "id"), "")
        full = self._existing_id(obj, record_id.strip())
        old = self.records[obj.name].pop(full)
        self._unindex(obj, old)
        self.deleted[full] = (obj.name, now_text())
        if undo is not None:
            undo.append((obj.name, full, old))
        return WriteResult(full, False)

    def _save(
        self,
        obj: ObjectDef,
        record_id: str | None,
        changes: dict[str, Any],
        undo: list | None,
        unique_checked: str | None = None,
    ) -> WriteResult:
        """Store a record; `unique_checked` names a unique field whose value the caller
        found held by `record_id` (or by no record) just now, under the same lock."""
        store = self.records[obj.name]
        old = store.get(record_id) if record_id else None
        record = {**old, **changes} if old else dict(changes)
        missing: list[str] = []  # a loop, not a comprehension's call for every record
        for name in obj.required_names:
            if record.get(name) in (None, ""):
                missing.append(name)
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for name in obj.unique_names:
            if name == unique_checked or record.get(name) in (None, ""):
                continue
            holder = self.find_by_unique(obj.name, name, record[name])
            if holder is not None and holder != record_id:
                raise RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {name} duplicates value on record with id: "
                    f"{holder}",
                    [name],
                )
        stamp = now_text()
        created = old is None
        if old is None:
            record_id = self.ids.new_id(obj.key_prefix)
            record["Id"] = record_id
            record["IsDeleted"] = False
            record["CreatedDate"] = stamp
        else:
            self._unindex(obj, old)
        record["LastModifiedDate"] = stamp
        record["SystemModstamp"] = stamp
        assert record_id is not None
        store[record_id] = record
        self._index(obj, record)
        if undo is not None:
            undo.append((obj.name, record_id, old))
        return WriteResult(record_id, created)

    def undo(self, undo: list) -> None:
        """Revert the writes recorded in `undo`, newest first."""
        with self.lock:
            self.generation += 1
            for sobject, record_id, old in reversed(undo):
                obj = self.objects[sobject]
                current = self.records[sobject].pop(record_id, None)
                if current is not None:
                    self._unindex(obj, current)
                if old is not None:
                    self.records[sobject][record_id] = old
                    self._index(obj, old)
                    self.deleted.pop(record_id, None)
            undo.clear()

    def _index(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        for name in obj.unique_names:
            value = record.get(name)
            if value is not None and value != "":
                index = self.unique_index.get((obj.name, name))
                if index is None:
                    index = self.unique_index[(obj.name, name)] = {}
                index[_unique_key(value)] = record["Id"]

    def _unindex(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        for name in obj.unique_names:
            value = record.get(name)
            if value not in (None, ""):
                self.unique_index.get((obj.name, name), {}).pop(_unique_key(value), None)


def _unique_key(value: Any) -> Any:
    # Unique and external id text fields are case-insensitive unless marked otherwise.
    return value.lower() if isinstance(value, str) else value
