"""The three result CSVs of an ingest job (successful, failed, unprocessed), written as
its rows are applied and cut back to the last whole internal batch when a stopped job
goes on."""

from __future__ import annotations

import csv
import os
import tempfile
from typing import TextIO

from sfsim.ingest_job import IngestJob

RESULT_NAMES = {"ok": "successfulResults", "failed": "failedResults",
                "unprocessed": "unprocessedrecords"}


class ResultWriters:
    """The three result CSVs of a job, written as processing goes."""

    def __init__(self, job: IngestJob, files: dict[str, TextIO], paths: dict[str, str]
                 ) -> None:
        self.files = files
        self._paths = paths
        self.writers = {
            kind: csv.writer(out, delimiter=job.delimiter, lineterminator="\n",
                             quoting=csv.QUOTE_ALL)
            for kind, out in files.items()
        }

    @classmethod
    def create(cls, job: IngestJob, columns: list[str], spool_dir: str | None
               ) -> ResultWriters:
        files: dict[str, TextIO] = {}
        paths: dict[str, str] = {}
        for kind, name in RESULT_NAMES.items():
            handle, paths[name] = tempfile.mkstemp(prefix=f"sfsim-{job.id}-{name}-",
                                                   suffix=".csv", dir=spool_dir)
            files[kind] = open(handle, "w", encoding="utf-8", newline="")  # noqa: SIM115
        writers = cls(job, files, paths)
        writers.write("ok", ["sf__Id", "sf__Created", *columns])
        writers.write("failed", ["sf__Id", "sf__Error", *columns])
        writers.write("unprocessed", list(columns))
        return writers

    @classmethod
    def reopen(cls, job: IngestJob) -> ResultWriters:
        """The files of a job stopped mid-way, cut back to its last whole internal batch."""
        files: dict[str, TextIO] = {}
        for kind, name in RESULT_NAMES.items():
            path = job.results[name]
            with open(path, "r+b") as out:
                out.truncate(job.result_sizes[name])
            files[kind] = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        return cls(job, files, dict(job.results))

    def write(self, kind: str, row: list[str]) -> None:
        self.writers[kind].writerow(row)

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def sizes(self) -> dict[str, int]:
        """Flush the files; their sizes, by result name."""
        sizes = {}
        for kind, out in self.files.items():
            out.flush()
            sizes[RESULT_NAMES[kind]] = os.fstat(out.fileno()).st_size
        return sizes

    def close(self) -> None:
        for out in self.files.values():
            out.close()
