"""The simulated org's objects: fields, required and unique fields, external ids, lookups.

The default schema has Account, Contact (AccountId → Account), the three-level
Account → Opportunity → OpportunityLineItem, and Asset with an external id. Another schema
can be loaded from JSON (`--schema FILE` or `PUT /_sim/objects/{name}`) in the shape that
`ObjectDef.to_json` writes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

FIELD_TYPES = (
    "id", "string", "textarea", "email", "phone", "picklist", "reference", "boolean",
    "int", "double", "currency", "percent", "date", "datetime",
)
# Types whose text is stored as it is once its length is checked, and types whose floats
# are stored as they are (`sfsim.record_values` converts or checks the others).
PLAIN_TEXT_TYPES = frozenset(("id", "string", "textarea", "phone", "picklist"))
FLOAT_TYPES = frozenset(("double", "currency", "percent"))
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass
class FieldDef:
    name: str
    type: str = "string"
    required: bool = False
    unique: bool = False
    external_id: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    length: int = 255
    label: str | None = None

    def __post_init__(self) -> None:
        self.createable = self.name not in SYSTEM_FIELDS
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: type must be one of {', '.join(FIELD_TYPES)}")
        if self.type == "reference" and not self.reference_to:
            raise ValueError(f"field {self.name}: a reference needs reference_to")
        if self.type == "reference" and not self.relationship_name:
            self.relationship_name = self.name[:-2] if self.name.endswith("Id") else (
                self.name[:-3] + "__r" if self.name.endswith("__c") else self.name
            )
        if self.external_id:
            # Salesforce indexes external ids and upserts match on them: one record a value.
            self.unique = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "required": self.required,
            "unique": self.unique, "external_id": self.external_id,
            "reference_to": self.reference_to, "relationship_name": self.relationship_name,
            "length": self.length,
        }


@dataclass
class ObjectDef:
    name: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self) -> None:
        if len(self.key_prefix) != 3 or not self.key_prefix.isalnum():
            raise ValueError(f"object {self.name}: key_prefix must be 3 letters or digits")
        system = {
            "Id": FieldDef("Id", "id", length=18),
            "IsDeleted": FieldDef("IsDeleted", "boolean"),
            "CreatedDate": FieldDef("CreatedDate", "datetime"),
            "LastModifiedDate": FieldDef("LastModifiedDate", "datetime"),
            "SystemModstamp": FieldDef("SystemModstamp", "datetime"),
        }
        self.fields = {**system, **{k: v for k, v in self.fields.items() if k not in system}}
        # Looked up for every value of every record written: an object's fields are fixed
        # once it is defined (a changed definition is a new ObjectDef).
        self._lowered: dict[str, FieldDef] = {}
        for definition in self.fields.values():
            self._lowered.setdefault(definition.name.lower(), definition)
        # The fields a write names plainly and may set (no relationship path, not Id):
        # most values of most records are for one of these.
        self.settable: dict[str, FieldDef] = {
            name: definition for name, definition in self.fields.items()
            if definition.createable and name != "Id" and "." not in name
        }
        # Of those, the plain text fields with their lengths and the float fields: a value
        # of the type is stored as it came.
        self.text_lengths = {name: definition.length for name, definition
                             in self.settable.items() if definition.type in PLAIN_TEXT_TYPES}
        self.float_names = frozenset(name for name, definition in self.settable.items()
                                     if definition.type in FLOAT_TYPES)
        self.required_names = tuple(f.name for f in self.fields.values() if f.required)
        self.unique_names = tuple(f.name for f in self.fields.values() if f.unique)

    def field_named(self, name: str) -> FieldDef | None:
        """Field lookup is case-insensitive, as in Salesforce."""
        found = self.fields.get(name)
        if found is not None:
            return found
        return self._lowered.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        lowered = name.lower()
        return next(
            (
                f for f in self.fields.values()
                if f.type == "reference" and (f.relationship_name or "").lower() == lowered
            ),
            None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_prefix": self.key_prefix,
            "fields": [f.to_json() for f in self.fields.values() if f.name not in SYSTEM_FIELDS],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ObjectDef:
        fields = {}
        for spec in body.get("fields", []):
            definition = FieldDef(**{k: v for k, v in spec.items() if k != "label"})
            fields[definition.name] = definition
        return cls(name=body["name"], key_prefix=body["key_prefix"], fields=fields)


def _obj(name: str, prefix: str, *fields: FieldDef) -> ObjectDef:
    return ObjectDef(name, prefix, {f.name: f for f in fields})


def default_objects() -> dict[str, ObjectDef]:
    objects = [
        _obj(
            "Account", "001",
            FieldDef("Name", required=True),
            FieldDef("External_Id__c", external_id=True, length=80),
            FieldDef("AccountNumber", length=40),
            FieldDef("Industry", "picklist"),
            FieldDef("Phone", "phone", length=40),
            FieldDef("Website"),
            FieldDef("BillingCity", length=40),
            FieldDef("AnnualRevenue", "currency"),
            FieldDef("NumberOfEmployees", "int"),
            FieldDef("Description", "textarea", length=32000),
            FieldDef("ParentId", "reference", reference_to="Account", relationship_name="Parent"),
        ),
        _obj(
            "Contact", "003",
            FieldDef("LastName", required=True, length=80),
            FieldDef("FirstName", length=40),
            FieldDef("Email", "email", length=80),
            FieldDef("Phone", "phone", length=40),
            FieldDef("Birthdate", "date"),
            FieldDef("AccountId", "reference", reference_to="Account"),
            FieldDef("External_Id__c", external_id=True, length=80),
        ),
        _obj(
            "Opportunity", "006",
            FieldDef("Name", required=True, length=120),
            FieldDef("StageName", "picklist", required=True),
            FieldDef("CloseDate", "date", required=True),
            FieldDef("Amount", "currency"),
            FieldDef("AccountId", "reference", reference_to="Account"),
            FieldDef("External_Id__c", external_id=True, length=80),
        ),
        _obj(
            "OpportunityLineItem", "00k",
            FieldDef(
                "OpportunityId", "reference", required=True, reference_to="Opportunity"
            ),
            FieldDef("Quantity", "double", required=True),
            FieldDef("UnitPrice", "currency"),
            FieldDef("Description", length=255),
            FieldDef("External_Id__c", external_id=True, length=80),
        ),
        _obj(
            "Asset", "02i",
            FieldDef("Name", required=True),
            FieldDef("SerialNumber", length=80),
            FieldDef("Status", "picklist"),
            FieldDef("Quantity", "double"),
            FieldDef("Price", "currency"),
            FieldDef("InstallDate", "date"),
            FieldDef("AccountId", "reference", reference_to="Account"),
            FieldDef("ContactId", "reference", reference_to="Contact"),
            FieldDef("External_Id__c", external_id=True, length=80),
        ),
    ]
    return {obj.name: obj for obj in objects}


# -- record ids -------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


# An ASCII character -> "1" if it is an upper-case letter, else "0".
_UPPER_BITS = str.maketrans({chr(code): "1" if chr(code).isupper() else "0"
                             for code in range(128)})
# A chunk's five bits (its first character first) -> its checksum character.
_CHUNK_CHECKSUMS = {format(value, "05b")[::-1]: char for value, char in enumerate(_CHECKSUM)}
# 0 to 3,843 -> its two base-62 digits, and their upper-case bits.
_BASE62_PAIRS = [high + low for high in _BASE62 for low in _BASE62]
_PAIR_BITS = [pair.translate(_UPPER_BITS) for pair in _BASE62_PAIRS]


def id_checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique."""
    if len(id15) != 15 or not id15.isascii():
        return _chunk_checksum(id15[:5]) + _chunk_checksum(id15[5:10]) + _chunk_checksum(
            id15[10:15])
    # Every id written or read asks for it: one translation, then a table look-up a chunk.
    bits = id15.translate(_UPPER_BITS)
    return (_CHUNK_CHECKSUMS[bits[:5]] + _CHUNK_CHECKSUMS[bits[5:10]]
            + _CHUNK_CHECKSUMS[bits[10:]])


def _chunk_checksum(chunk: str) -> str:
    return _CHECKSUM[sum(1 << bit for bit, char in enumerate(chunk) if char.isupper())]


def to_18(record_id: str) -> str:
    return record_id if len(record_id) == 18 else record_id + id_checksum(record_id)


def looks_like_id(value: str) -> bool:
    return len(value) in (15, 18) and value.isalnum() and (
        len(value) == 15 or id_checksum(value[:15]) == value[15:].upper()
    )


class IdFactory:
    """Salesforce-shaped ids: key prefix, a pod-like "0000", a base-62 counter, checksum."""

    def __init__(self, next_number: int = 1) -> None:
        # The counter of the next id: a restarted org goes on from where it stopped.
        self.next_number = next_number
        self._lock = threading.Lock()
        # Key prefix -> what `_id_head` made for its ids' current first 13 characters.
        self._heads: dict[str, tuple[int, str, str, str | None]] = {}

    def new_id(self, key_prefix: str) -> str:
        with self._lock:
            number = self.next_number
            self.next_number += 1
        high, low = divmod(number, 3844)
        # Ids are made in sequence: all but the counter's last two digits change once in
        # 3,844 ids, and are written out, with their part of the checksum, then only.
        head = self._heads.get(key_prefix)
        if head is None or head[0] != high:
            head = self._heads[key_prefix] = _id_head(key_prefix, high)
        _, text, checksum, tail_bits = head
        id15 = text + _BASE62_PAIRS[low]
        if tail_bits is None:
            return id15 + id_checksum(id15)
        return id15 + checksum + _CHUNK_CHECKSUMS[tail_bits + _PAIR_BITS[low]]


def _id_head(key_prefix: str, high: int) -> tuple[int, str, str, str | None]:
    """(high, an id's first 13 characters, the checksum of its first two chunks, the
    upper-case bits of its characters 11 to 13) for ids of `key_prefix` whose counter
    divided by 3,844 is `high`; bits None if the prefix is not 3 ASCII characters."""
    digits = ""
    rest = high
    while rest:
        rest, digit = divmod(rest, 62)
        digits = _BASE62[digit] + digits
    text = key_prefix + "4x" + digits.rjust(8, "0")
    if len(text) != 13 or not text.isascii():
        return high, text, "", None
    bits = text.translate(_UPPER_BITS)
    return high, text, _CHUNK_CHECKSUMS[bits[:5]] + _CHUNK_CHECKSUMS[bits[5:10]], bits[10:]
