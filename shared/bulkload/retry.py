"""A load of the failed, unprocessed and orphaned records of an ended load.

The records come from the ended load's per-level failure files, which keep the values as
they were sent (`#N/A` for a field cleared with null). Children whose parent the ended
load did load are linked to that parent: its ID maps are copied into the new load.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.bulkload.levels import (
    FAILED_FILE,
    FAILURE_COLUMNS,
    ID_MAP_COLUMNS,
    INHERITED_ID_MAP_FILE,
    ORPHANS_FILE,
    CsvOut,
    csv_rows,
    read_id_map,
)
from shared.bulkload.request import LoadLevel, LoadRecord, LoadRequest
from shared.bulkload.store import LoadStore, spooled_file
from shared.salesforce import NULL_MARKER

RETRY_SUFFIX = ".retry"


def retry_load_id(origin: str) -> str:
    """The default id of the retry of `origin`: posting it twice starts one retry."""
    return origin + RETRY_SUFFIX


def retry_request(origin: LoadStore, levels: Sequence[LoadLevel],
                  load_id: str) -> LoadRequest:
    """The ended load's failed and orphaned records, level by level."""
    request = LoadRequest(load_id, list(levels), [[] for _ in levels])
    for index in range(len(levels)):
        for name in (FAILED_FILE, ORPHANS_FILE):
            with origin.download_if_exists(origin.level_blob(index, name)) as local:
                if local is None:
                    continue
                for row in csv_rows(local):
                    fields = {column: None if value == NULL_MARKER else value
                              for column, value in row.items()
                              if column not in FAILURE_COLUMNS and value}
                    request.records[index].append(LoadRecord(
                        fields, row["externalId"] or None, row["parentExternalId"] or None))
    return request


def failed_record_count(request: LoadRequest) -> int:
    return sum(len(records) for records in request.records)


def inherit_id_maps(origin: LoadStore, retry: LoadStore, levels: Sequence[LoadLevel]) -> None:
    """Give the retry the Salesforce ids of every parent the ended load loaded."""
    parents = {level.parent for level in levels if level.parent is not None}
    for index in sorted(parents):
        with spooled_file() as out:
            writer = CsvOut(out, ID_MAP_COLUMNS)
            for external_id, sf_id in read_id_map(origin, index).items():
                writer.writerow([external_id, sf_id])
            writer.finish()
            out.seek(0)
            retry.upload_file(retry.level_blob(index, INHERITED_ID_MAP_FILE), out)
