"""The backlog's parts (shared/sync/backlog_parts.py): cut at the row and byte limits, each
handed to its submission with every row once."""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

import pytest

from shared.bulkload.messages import JobSnapshot
from shared.sync.backlog_parts import PartJobs


def read_parts(parts: list[bytes]) -> list[list[list[str]]]:
    return [list(csv.reader(io.StringIO(part.decode()))) for part in parts]


@pytest.mark.timeout(20)  # the failure this guards against is a loop that never ends
def test_rows_that_fit_a_new_part_but_not_the_rest_of_this_one_start_the_next_part():
    """A part full by bytes is handed over and the rows go to the next part; the byte
    count of the part handed over used to stay, so the rows never fitted and `add`
    handed over nothing, again and again."""
    submitted: list[bytes] = []

    def submit(part: BinaryIO) -> JobSnapshot:
        submitted.append(part.read())
        return JobSnapshot(f"job-{len(submitted)}", "UploadComplete")

    rows = [[f"r{number}", "x" * 80] for number in range(20)]
    with PartJobs(["Name", "Text"], submit, part_rows=1000, max_part_bytes=1000) as parts:
        for start in range(0, len(rows), 5):
            parts.add(rows[start:start + 5])
        jobs = parts.finish()

    cut = read_parts(submitted)
    assert [job.id for job in jobs] == [f"job-{n}" for n in range(1, len(cut) + 1)]
    assert len(cut) > 1 and all(len(part) <= 1000 for part in submitted)
    assert all(part[0] == ["Name", "Text"] for part in cut)
    assert [row for part in cut for row in part[1:]] == rows
