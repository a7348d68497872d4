"""What a load would do, without doing it: `POST /api/bulk-loads?validateOnly=true`.

Each level's records, the size of its ingest CSV and the jobs it would be split into, as
if every parent were loaded (a child of a parent that fails is never sent, so the real
load sends at most this). Nothing is staged, claimed or sent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from shared.bulkload.request import LoadRequest
from shared.bulkload.staged import csv_values, data_columns
from shared.salesforce.bulk_csv import format_value

# The length of a Salesforce id, which the real load writes into a child's reference field.
PLACEHOLDER_ID = "0" * 18


def plan_load(request: LoadRequest, upload_limit: int) -> dict[str, Any]:
    levels = []
    for level, records in zip(request.levels, request.records, strict=True):
        columns = data_columns(record.fields for record in records)
        header = columns + ([level.parent_reference_field] if level.parent_reference_field
                            else [])
        rows = ([format_value(value) for value in csv_values(record.fields, columns).values()]
                + ([PLACEHOLDER_ID] if level.parent_reference_field else [])
                for record in records)
        size, parts = _csv_size_and_parts(header, rows, upload_limit) if records else (0, 0)
        levels.append({
            "level": level.name, "object": level.object, "operation": level.operation,
            "externalIdField": level.external_id_field,
            "parent": request.levels[level.parent].name if level.parent is not None else None,
            "parentReferenceField": level.parent_reference_field,
            "records": len(records), "csvBytes": size, "jobParts": parts,
        })
    return {"loadId": request.load_id, "valid": True, "levels": levels,
            "records": sum(level["records"] for level in levels),
            "jobParts": sum(level["jobParts"] for level in levels)}


def _csv_size_and_parts(header: list[str], rows: Iterable[list[str]],
                        limit: int) -> tuple[int, int]:
    """Bytes of the CSV and the parts `split_ingest_csv` would cut it into."""
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\n")

    def encoded(values: list[str]) -> int:
        line.seek(0)
        line.truncate()
        writer.writerow(values)
        return len(line.getvalue().encode("utf-8"))

    header_size = encoded(header)
    total, parts, part_size = header_size, 0, 0
    for row in rows:
        size = encoded(row)
        total += size
        if parts == 0 or part_size + size > limit:
            parts += 1
            part_size = header_size
        part_size += size
    return total, parts
