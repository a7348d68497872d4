"""The failure report of an instance: one CSV row per failure of a record at a step.

Columns: step, exceptionType, message, recordIndex, record (the payload as JSON). Cells a
spreadsheet would read as a formula are neutralised, and no cell carries a traceback.
`read_record_failures` reads it back: which records failed, and why (for an orchestration
that ran the instance and maps its records back to its own items).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from shared.batch.blocks import BlockState
from shared.batch.job import StepFailure
from shared.batch.store import BlobStore, InstanceFolder, read_blobs

COLUMNS = ("step", "exceptionType", "message", "recordIndex", "record")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
REPORT_READS = 64  # block states read side by side, then written out in block order


def neutralised(cell: str) -> str:
    """`cell` made inert for spreadsheets (OWASP CSV injection): a leading ' on formulas."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def restored(cell: str) -> str:
    """The cell as it was before `neutralised`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS) else cell


def write_failures_report(store: BlobStore, folder: InstanceFolder) -> int:
    """Write failures.csv from the blocks' persisted states; returns the rows written."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    rows = 0
    names = list(store.names(folder.states_prefix))
    for start in range(0, len(names), REPORT_READS):
        for stored in read_blobs(store, names[start:start + REPORT_READS]):
            if stored is not None:
                rows += _write_rows(writer, BlockState.from_blob(*stored))
    # A payload may hold a lone surrogate a step put there: escaped, the report is written.
    store.write(folder.failures_report, text.getvalue().encode("utf-8", "backslashreplace"))
    return rows


def _write_rows(writer: Any, state: BlockState) -> int:
    rows = 0
    for position, failures in enumerate(state.failures):
        record = json.dumps(state.payloads[position], ensure_ascii=False)
        for step, kind, message in failures:
            writer.writerow([neutralised(cell) for cell in (
                step, kind, message, str(state.first_index + position), record)])
            rows += 1
    return rows


def read_record_failures(store: BlobStore, folder: InstanceFolder) -> dict[int, StepFailure]:
    """The first failure of each failed record, by record index, from the written report.

    Raises LookupError when the report was not written (the instance has not ended)."""
    stored = store.read(folder.failures_report)
    if stored is None:
        raise LookupError(f"{folder.prefix} has no failure report")
    failures: dict[int, StepFailure] = {}
    for row in csv.DictReader(io.StringIO(stored[0].decode("utf-8"), newline="")):
        index = int(row["recordIndex"])
        if index not in failures:
            failures[index] = StepFailure(restored(row["step"]), restored(row["exceptionType"]),
                                          restored(row["message"]))
    return failures
