"""Table Storage rows written under ETag conditions: a lost race is an exception, not a
silent overwrite.

`ConcurrentWrite` is what every caller branches on; the SDK's two shapes of it (409 on
create, 412 on a stale ETag) are folded into one.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

_created: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


class ConcurrentWrite(Exception):
    """Someone else wrote the row since it was read (or created it first)."""


@dataclass(frozen=True)
class StoredEntity:
    values: dict[str, Any]
    etag: str


def table_client(service: TableServiceClient, name: str) -> TableClient:
    """A client for table `name`, created on first use in this process."""
    client = service.get_table_client(name)
    marker = (service.url, name)
    if marker not in _created:
        with _created_lock:
            if marker not in _created:
                with contextlib.suppress(ResourceExistsError):
                    service.create_table(name)
                _created.add(marker)
    return client


def read_entity(table: TableClient, partition_key: str, row_key: str) -> StoredEntity | None:
    try:
        entity = table.get_entity(partition_key, row_key)
    except ResourceNotFoundError:
        return None
    values = {key: value for key, value in entity.items()}
    etag = entity.metadata["etag"]
    assert etag is not None  # the service sends the ETag of every entity it returns
    return StoredEntity(values, etag)


def create_entity(table: TableClient, entity: dict[str, Any]) -> str:
    """Insert; raise ConcurrentWrite when the row exists already. Returns the new ETag."""
    try:
        etag: str = table.create_entity(entity)["etag"]
        return etag
    except ResourceExistsError as error:
        raise ConcurrentWrite(str(error.reason or "row exists")) from None


def replace_if_unchanged(table: TableClient, entity: dict[str, Any], etag: str) -> str:
    """Replace the row only if its ETag is still `etag`; returns the new ETag."""
    try:
        metadata = table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError) as error:
        raise ConcurrentWrite(str(error.reason or "row changed")) from None
    new_etag: str = metadata["etag"]
    return new_etag


def write_entity(table: TableClient, entity: dict[str, Any], etag: str | None) -> str:
    """Create when `etag` is None (the row was absent when read), else replace-if-unchanged."""
    if etag is None:
        return create_entity(table, entity)
    return replace_if_unchanged(table, entity, etag)


_FORBIDDEN_IN_KEYS = str.maketrans({"/": "%2F", "\\": "%5C", "#": "%23", "?": "%3F", "%": "%25"})


def safe_key(text: str) -> str:
    """A PartitionKey/RowKey from any text: the four forbidden characters escaped."""
    escaped = "".join(ch for ch in text.translate(_FORBIDDEN_IN_KEYS) if ch.isprintable())
    return escaped[:1024]
