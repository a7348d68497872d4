"""What a load's records were, in a few bytes: to tell a re-post of the same load from a
different body sent under a load id that is already used."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.bulkload.request import LoadLevel, LoadRequest
from shared.messages import Message


@dataclass(frozen=True)
class LevelFingerprint(Message):
    level: str
    object: str
    operation: str
    records: int
    digest: str  # SHA-256 of the level's records, in order


# json.dumps(value, sort_keys=True) without building an encoder per record: the same text,
# so digests of loads fingerprinted before stay comparable.
_encode_sorted = json.JSONEncoder(sort_keys=True).encode


def record_text(external_id: str | None, parent_external_id: str | None,
                fields: Mapping[str, Any]) -> str:
    """A record as its level's digest reads it (one line of JSON, ASCII only); it is also
    the record's line in the staged records file, so a record is encoded once."""
    return _encode_sorted([external_id, parent_external_id, fields])


def level_digest(level: LoadLevel) -> Any:
    """The digest of a level before its records: then each record's text and a newline."""
    return hashlib.sha256(json.dumps(level.to_json(), sort_keys=True).encode())


def request_fingerprint(request: LoadRequest) -> tuple[LevelFingerprint, ...]:
    fingerprints = []
    for level, records in zip(request.levels, request.records, strict=True):
        digest = level_digest(level)
        for record in records:
            digest.update(record_text(record.external_id, record.parent_external_id,
                                      record.fields).encode())
            digest.update(b"\n")
        fingerprints.append(LevelFingerprint(level.name, level.object, level.operation,
                                             len(records), digest.hexdigest()))
    return tuple(fingerprints)


def fingerprint_digest(fingerprints: Sequence[LevelFingerprint]) -> str:
    """One text for all levels, short enough for blob metadata."""
    return hashlib.sha256(
        "".join(level.digest for level in fingerprints).encode()).hexdigest()


def fingerprint_difference(posted: Sequence[LevelFingerprint],
                           loaded: Sequence[LevelFingerprint]) -> str | None:
    """How the posted body differs from the load already under its id; None if it does not."""
    if [level.level for level in posted] != [level.level for level in loaded]:
        return (f"levels {[level.level for level in posted]} were posted; the load has "
                f"{[level.level for level in loaded]}")
    for new, old in zip(posted, loaded, strict=True):
        if (new.object, new.operation) != (old.object, old.operation):
            return (f"level {new.level!r} is {new.operation} {new.object}; in the load it is "
                    f"{old.operation} {old.object}")
        if new.records != old.records:
            return (f"level {new.level!r} has {new.records} records; the load has "
                    f"{old.records}")
        if new.digest != old.digest:
            return f"the records of level {new.level!r} differ from the load's"
    return None
