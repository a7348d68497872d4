"""Table Storage rows written under ETag conditions: a lost race is an exception, not a
silent overwrite.

`ConcurrentWrite` is what every caller branches on; the SDK's two shapes of it (409 on
create, 412 on a stale ETag) are folded into one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


@dataclass(frozen=True)
class RowAsRead:
    """A row as an earlier read found it (`entity` None: absent), so that a write under its
    ETag need not read it again; a stale one only makes that write a `ConcurrentWrite`."""

    entity: StoredEntity | None


def table_client(service: TableServiceClient, name: str) -> TableClient:
    """A client for table `name`, created on first use in this process."""
    marker = (service.url, name)
    if marker not in _created:
        # Not under the lock: tables_clients creates several side by side, and a table
        # created twice is harmless (the second create is refused, and ignored).
        with contextlib.suppress(ResourceExistsError):
            service.create_table(name)
        with _created_lock:
            _created.add(marker)
    return service.get_table_client(name)


def table_clients(service: TableServiceClient, names: Sequence[str]) -> list[TableClient]:
    """Clients for tables `names`; those this process has not created yet are created side
    by side: one round trip's wait instead of one per table."""
    missing = [name for name in dict.fromkeys(names) if (service.url, name) not in _created]
    if len(missing) > 1:
        with ThreadPoolExecutor(len(missing), thread_name_prefix="create-table") as pool:
            list(pool.map(lambda name: table_client(service, name), missing))
    return [table_client(service, name) for name in names]


def read_entity(table: TableClient, partition_key: str, row_key: str) -> StoredEntity | None:
    try:
        entity = table.get_entity(partition_key, row_key)
    except ResourceNotFoundError:
        return None
    values = {key: value for key, value in entity.items()}
    etag = entity.metadata["etag"]
    assert etag is not None  # the service sends the ETag of every entity it returns
    return StoredEntity(values, etag)


def read_entities(table: TableClient, partition_key: str,
                  row_keys: Sequence[str]) -> dict[str, RowAsRead]:
    """Rows of one partition in one query: one round trip instead of one per row."""
    parameters = {"partition": partition_key,
                  **{f"row{index}": key for index, key in enumerate(row_keys)}}
    rows = " or ".join(f"RowKey eq @row{index}" for index in range(len(row_keys)))
    found: dict[str, StoredEntity] = {}
    # Spaces inside the parentheses: the SDK finds `@name` between whitespace only.
    for entity in table.query_entities(f"PartitionKey eq @partition and ( {rows} )",
                                       parameters=parameters):
        etag = entity.metadata["etag"]
        assert etag is not None  # the service sends the ETag of every entity it returns
        found[entity["RowKey"]] = StoredEntity(dict(entity), etag)
    return {key: RowAsRead(found.get(key)) for key in row_keys}


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
