"""Running ingest jobs: each closed job on its own thread, through its states, its CSV
applied to the org in internal batches of 10,000 records as Salesforce does.

A closed job moves UploadComplete → InProgress → JobComplete (or Failed) each step after
the configured delay. Result rows are shuffled within each batch because Salesforce does
not keep input order either. When the simulator stops, a job halts between two internal
batches and, with a state file, goes on from there after a restart.
"""

from __future__ import annotations

import csv
import io
import random
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sfsim.bulk_jobs import LINE_ENDINGS
from sfsim.ingest_job import IngestJob
from sfsim.ingest_results import ResultWriters
from sfsim.org import now_text
from sfsim.record_values import RecordError

if TYPE_CHECKING:
    from sfsim.ingest import IngestJobs

INTERNAL_BATCH = 10_000


class _Stopped(Exception):
    """The simulator is stopping: the job halts where it is, to go on after a restart."""


class IngestRunner:
    """Runs the closed jobs of `jobs`; thread-safe."""

    def __init__(self, jobs: IngestJobs) -> None:
        self.jobs = jobs
        self.random = random.Random(getattr(jobs.settings, "seed", None))  # noqa: S311
        self.threads: list[threading.Thread] = []
        # Set when the simulator stops: jobs halt between internal batches, unfinished.
        self.stopping = threading.Event()

    def start(self, job: IngestJob) -> None:
        """Run a closed job (or an unfinished one after a restart) on its own thread."""
        thread = threading.Thread(
            target=self._run, args=(job,), name=f"sfsim-job-{job.id}", daemon=True
        )
        self.threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Halt the running jobs between internal batches, leaving them unfinished."""
        self.stopping.set()
        with self.jobs.lock:
            for job in self.jobs.jobs.values():
                job.aborted.set()
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=30)

    def _wait(self, job: IngestJob) -> bool:
        """Sleep the configured step delay, varied by its jitter; False when the job was
        aborted meanwhile."""
        settings = self.jobs.settings
        with self.jobs.lock:
            share = self.random.uniform(-1.0, 1.0) * settings.job_delay_jitter
        return not job.aborted.wait(settings.job_delay_seconds * (1.0 + share))

    def _run(self, job: IngestJob) -> None:
        """UploadComplete → InProgress → a final state; an InProgress job (one resumed after
        a restart) goes on from its last internal batch."""
        started = time.monotonic()
        try:
            if job.state == "UploadComplete":
                if not self._wait(job):
                    return
                with self.jobs.lock:
                    if job.state != "UploadComplete":
                        return
                    job.state = "InProgress"
                    job.system_modstamp = now_text()
                self.jobs.on_change()
                if not self._wait(job):
                    return
            active_from = time.monotonic()
            final_state, message = self._apply_upload(job)
            with self.jobs.lock:
                if job.state == "InProgress":
                    job.state = final_state
                    job.error_message = message
                    ended = time.monotonic()
                    job.processing_ms += int((ended - started) * 1000)
                    # Salesforce's apiActiveProcessingTime leaves out the time queued.
                    job.active_ms += int((ended - active_from) * 1000)
                    job.system_modstamp = now_text()
        except _Stopped:
            return
        # A simulator bug must show as a Failed job, not as a job stuck InProgress.
        except Exception as error:
            with self.jobs.lock:
                job.state = "Failed"
                job.error_message = f"InternalServerError : {error}"
        self.jobs.on_change()

    def _apply_upload(self, job: IngestJob) -> tuple[str, str | None]:
        if not job.data_file:
            return "Failed", "InvalidBatch : No data was uploaded for this job"
        with open(job.data_file, "rb") as raw:
            header_line = raw.readline()
        expected = LINE_ENDINGS[job.line_ending].encode()
        wrong = header_line.endswith(b"\r\n") != (expected == b"\r\n")
        if header_line and header_line.endswith(b"\n") and wrong:
            return self._fail_all(
                job,
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                f"setting is {job.line_ending}",
            )
        with open(job.data_file, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=job.delimiter)
            try:
                columns = next(reader)
            except StopIteration:
                return self._fail_all(job, "InvalidBatch : The CSV has no header row")
            problem = self._check_header(job, columns)
            if problem:
                return self._fail_all(job, problem)
            if job.result_sizes:
                writers = ResultWriters.reopen(job)
            else:
                writers = ResultWriters.create(job, columns, self.jobs.spool_dir)
                with self.jobs.lock:
                    job.results = writers.paths()
                    job.result_sizes = writers.sizes()
            try:
                return self._apply_rows(job, columns, _skip_rows(reader, job.processed),
                                        writers)
            finally:
                writers.close()

    def _apply_rows(
        self, job: IngestJob, columns: list[str], reader: Iterator[list[str]],
        writers: ResultWriters,
    ) -> tuple[str, str | None]:
        batch: list[list[str]] = []
        done = job.processed

        def run_batch() -> None:
            # The org lock holds a state-file snapshot off until the batch is written
            # whole: records, results and counts.
            with self.jobs.org.lock:
                write_batch()

        def write_batch() -> None:
            nonlocal done
            outcomes: list[tuple[str, list[str], str]] = []
            for row in batch:
                values = dict(zip(columns, row, strict=False))
                try:
                    if len(row) != len(columns):
                        raise RecordError(
                            "INVALID_FIELD",
                            f"the row has {len(row)} values for {len(columns)} columns",
                        )
                    with self.jobs.lock:
                        locked = self.random.random() < self.jobs.settings.record_lock_failure_rate
                    if locked:
                        raise RecordError(
                            "UNABLE_TO_LOCK_ROW",
                            "unable to obtain exclusive access to this record or 1 records",
                        )
                    result = self.jobs.org.write(
                        job.object, job.operation, values, job.external_id_field, from_csv=True
                    )
                    outcomes.append(("ok", row, f"{result.id}\x00{str(result.created).lower()}"))
                except RecordError as error:
                    fields = ",".join(error.fields)
                    failed_id = values.get("Id", "") if job.operation != "insert" else ""
                    outcomes.append(
                        ("failed", row, f"{failed_id}\x00{error.code}:{error.message}:"
                                        f"{fields} --")
                    )
            if self.jobs.settings.shuffle_results:
                self.random.shuffle(outcomes)
            for kind, row, extra in outcomes:
                first, second = extra.split("\x00", 1)
                writers.write(kind, [first, second, *row])
            sizes = writers.sizes()
            with self.jobs.lock:
                self.jobs.batches_processed += 1
                job.processed += len(batch)
                job.failed += sum(1 for kind, _, _ in outcomes if kind == "failed")
                job.result_sizes = sizes
            done += len(batch)
            batch.clear()
            self.jobs.on_change()

        for row in reader:
            if not row:
                continue  # a blank line is not a record
            if job.aborted.is_set():
                self._halt_when_stopping()
                writers.write("unprocessed", row)
                continue
            if job.fail_with and done + len(batch) >= job.fail_after_records:
                if batch:
                    run_batch()
                job.retries = 10
                writers.write("unprocessed", row)
                for rest in reader:
                    writers.write("unprocessed", rest)
                return "Failed", job.fail_with
            batch.append(row)
            if len(batch) >= INTERNAL_BATCH:
                run_batch()
                job.aborted.wait(self.jobs.settings.internal_batch_seconds)
        if job.aborted.is_set():
            self._halt_when_stopping()
        if batch and not job.aborted.is_set():
            run_batch()
        for row in batch:
            writers.write("unprocessed", row)
        if job.fail_with:
            return "Failed", job.fail_with
        return "JobComplete", None

    def _check_header(self, job: IngestJob, columns: list[str]) -> str | None:
        obj = self.jobs.org.objects[job.object]
        if len(set(c.lower() for c in columns)) != len(columns):
            return "InvalidBatch : Duplicate field name in the header"
        if job.operation in ("delete", "hardDelete"):
            if [c.lower() for c in columns] != ["id"]:
                return (
                    f"InvalidBatch : The '{job.operation}' batch must contain only 'Id' column"
                )
            return None
        for column in columns:
            if "." in column:
                relationship, _, parent_field = column.partition(".")
                reference = obj.relationship(relationship)
                if reference is None:
                    return f"InvalidBatch : Field name not found : {column}"
                parent = self.jobs.org.objects[reference.reference_to or ""]
                target = parent.field_named(parent_field)
                if target is None or not (target.external_id or target.name == "Id"):
                    return (
                        f"InvalidBatch : Field name not found : {column} (the field after "
                        "the relationship must be an external id field)"
                    )
            elif obj.field_named(column) is None:
                return f"InvalidBatch : Field name not found : {column}"
        if job.operation == "upsert" and job.external_id_field and not any(
            c.lower() == job.external_id_field.lower() for c in columns
        ):
            return (
                f"InvalidBatch : Field name not found : {job.external_id_field} (the external "
                "id field must be a column of an upsert)"
            )
        return None

    def _halt_when_stopping(self) -> None:
        if self.stopping.is_set():
            raise _Stopped

    def _fail_all(self, job: IngestJob, message: str) -> tuple[str, str | None]:
        if job.data_file:
            job.results["unprocessedrecords"] = job.data_file
        return "Failed", message


def _skip_rows(reader: Iterator[list[str]], count: int) -> Iterator[list[str]]:
    """The reader after its first `count` records (blank lines are not records)."""
    skipped = 0
    while skipped < count:
        if next(reader):
            skipped += 1
    return reader
