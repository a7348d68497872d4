"""A backlog run's ingest CSV cut into parts, each loaded by an upsert job while the next
part is written.

`PartJobs.add(lines)` appends formatted rows to the part being written (a temporary file
starting with the header); a part is full at `part_rows` rows, or when the next rows would
take it past `max_part_bytes`. A full part goes to a thread of its own that creates its
upsert job, uploads the part (streamed from the file) and closes the job, so Salesforce
works on it while the rows of the next part are read and written. `finish()` hands over
the last part and answers the jobs in part order once every part is submitted; the first
failure of a submission is raised there (or at the next `add`), and `close()` stops what
has not started and removes the files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from shared.bulkload.messages import JobSnapshot
from shared.salesforce import ingest_csv_bytes

SubmitPart = Callable[[BinaryIO], JobSnapshot]


class PartTooLarge(ValueError):
    """One record with the header does not fit in a part."""


class PartJobs:
    def __init__(self, columns: Sequence[str], submit: SubmitPart, part_rows: int,
                 max_part_bytes: int) -> None:
        self._header = ingest_csv_bytes([list(columns)])
        if len(self._header) >= max_part_bytes:
            raise PartTooLarge(f"the CSV header alone is over the {max_part_bytes}-byte "
                               "part limit")
        self._submit, self._part_rows, self._max_bytes = submit, part_rows, max_part_bytes
        # One submission at a time: parts reach Salesforce in order, one client session.
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="sync-backlog-submit")
        self._submitted: list[Future[JobSnapshot]] = []
        self._handed_over: list[BinaryIO] = []  # closed by their submission, or by close()
        self._part: BinaryIO | None = None
        self._rows = self._size = 0

    def add(self, lines: Sequence[Sequence[str]]) -> None:
        """Append formatted rows, starting new parts as the ones before fill up."""
        self._raise_failure()
        start = 0
        while start < len(lines):
            room = self._part_rows - self._rows
            chunk = lines[start:start + room]
            data = ingest_csv_bytes(chunk)
            if len(self._header) + len(data) > self._max_bytes:
                self._add_by_halves(chunk)
            elif self._size + len(data) > self._max_bytes:
                self._hand_over()
                continue
            else:
                self._write(data, len(chunk))
            start += len(chunk)
            if self._rows >= self._part_rows:
                self._hand_over()

    def finish(self) -> list[JobSnapshot]:
        """Submit the last part; the jobs of every part, in order, once all are closed."""
        self._hand_over()
        return [submitted.result() for submitted in self._submitted]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for part in (*self._handed_over, self._part):
            if part is not None:
                part.close()
        self._part = None

    def __enter__(self) -> PartJobs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _add_by_halves(self, lines: Sequence[Sequence[str]]) -> None:
        """Rows too large for one part: added in halves, down to a single row."""
        if len(lines) == 1:
            data = ingest_csv_bytes(lines)
            if len(self._header) + len(data) > self._max_bytes:
                raise PartTooLarge(f"a record of {len(data)} bytes does not fit, with the "
                                   f"header, in a {self._max_bytes}-byte part")
            if self._size + len(data) > self._max_bytes:
                self._hand_over()
            self._write(data, 1)
            return
        middle = len(lines) // 2
        self._add_by_halves(lines[:middle])
        self._add_by_halves(lines[middle:])

    def _write(self, data: bytes, rows: int) -> None:
        if self._part is None:
            self._part = tempfile.TemporaryFile()  # noqa: SIM115 - closed once submitted
            self._part.write(self._header)
            self._size = len(self._header)
        self._part.write(data)
        self._rows += rows
        self._size += len(data)

    def _hand_over(self) -> None:
        part, self._part, self._rows, self._size = self._part, None, 0, 0
        if part is None:
            return
        part.flush()
        part.seek(0)
        self._handed_over.append(part)
        self._submitted.append(self._executor.submit(self._submit_and_close, part))

    def _submit_and_close(self, part: BinaryIO) -> JobSnapshot:
        try:
            return self._submit(part)
        finally:
            part.close()

    def _raise_failure(self) -> None:
        for submitted in self._submitted:
            if submitted.done():
                submitted.result()  # raises the submission's error, if any
