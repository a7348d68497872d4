"""Bulk API 2.0 ingest jobs: states, uploads kept on disk, asynchronous processing, results.

A closed job moves UploadComplete → InProgress → JobComplete on its own thread, each step
after the configured delay, processing its CSV in internal batches of 10,000 records as
Salesforce does. Uploaded data and result files live in temporary files, so a job of any
size costs the simulator little memory; result rows are shuffled within each batch
because Salesforce does not keep input order either.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, BinaryIO, TextIO

from sfsim.org import OPERATIONS, Org, RecordError, now_text
from sfsim.standard import USER_ID

LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
COLUMN_DELIMITERS = {
    "COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`",
}
INTERNAL_BATCH = 10_000
TERMINAL = ("JobComplete", "Failed", "Aborted")
DELETABLE = ("UploadComplete", *TERMINAL)


class JobError(Exception):
    """A request about a job was refused: HTTP status, errorCode, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def job_info_fields(job: Any) -> dict[str, Any]:
    """The fields Salesforce's job info shares between ingest and query jobs."""
    return {
        "id": job.id,
        "operation": job.operation,
        "object": job.object,
        "createdById": USER_ID,
        "createdDate": job.created_date,
        "systemModstamp": job.system_modstamp or job.created_date,
        "state": job.state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": float(job.api_version),
        "lineEnding": job.line_ending,
        "columnDelimiter": job.column_delimiter,
    }


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id_field: str | None
    line_ending: str
    column_delimiter: str
    api_version: str
    assignment_rule_id: str | None
    created_date: str
    state: str = "Open"
    system_modstamp: str = ""
    data_file: str | None = None
    upload_bytes: int = 0
    processed: int = 0
    failed: int = 0
    retries: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    fail_with: str | None = None
    fail_after_records: int = 0
    results: dict[str, str] = field(default_factory=dict)
    # Bytes of each result file when the last internal batch ended: where a job stopped
    # mid-way picks up after a restart.
    result_sizes: dict[str, int] = field(default_factory=dict)
    aborted: threading.Event = field(default_factory=threading.Event)

    @property
    def delimiter(self) -> str:
        return COLUMN_DELIMITERS[self.column_delimiter]

    def content_url(self) -> str:
        return f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"

    def to_state(self) -> dict[str, Any]:
        """The job as JSON-ready data; its files are named relative to the spool folder."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "aborted"}
        body["data_file"] = self.data_file and os.path.basename(self.data_file)
        body["results"] = {kind: os.path.basename(path) for kind, path in self.results.items()}
        body["result_sizes"] = dict(self.result_sizes)
        return body

    @classmethod
    def from_state(cls, saved: dict[str, Any], spool_dir: str) -> IngestJob:
        job = cls(**saved)
        # An upload cut short by the stop never finished: the job takes a new one.
        job.data_file = os.path.join(spool_dir, job.data_file) if job.data_file else None
        job.results = {kind: os.path.join(spool_dir, name) for kind, name in job.results.items()}
        return job

    def files(self) -> set[str]:
        return {path for path in (self.data_file, *self.results.values()) if path}

    def to_json(self, full: bool = True) -> dict[str, Any]:
        body = job_info_fields(self)
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        if self.assignment_rule_id:
            body["assignmentRuleId"] = self.assignment_rule_id
        body["contentUrl"] = self.content_url()
        if full:
            body.update(
                jobType="V2Ingest",
                retries=self.retries,
                totalProcessingTime=self.processing_ms,
                apiActiveProcessingTime=self.processing_ms,
                apexProcessingTime=0,
                numberRecordsProcessed=self.processed,
                numberRecordsFailed=self.failed,
            )
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


class IngestJobs:
    """Every ingest job of the org; thread-safe."""

    def __init__(self, org: Org, settings: Any, spool_dir: str | None = None,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.org = org
        self.settings = settings
        self.spool_dir = spool_dir
        self.jobs: dict[str, IngestJob] = {}
        self.lock = threading.RLock()
        self.random = random.Random(getattr(settings, "seed", None))  # noqa: S311
        self.threads: list[threading.Thread] = []
        self.batches_processed = 0
        # Called when a job moves on its own (state, progress), for the state file.
        self.on_change = on_change
        # Set when the simulator stops: jobs halt between internal batches, unfinished.
        self.stopping = threading.Event()

    # -- requests ---------------------------------------------------------------------

    def create(self, body: Any, api_version: str) -> IngestJob:
        if not isinstance(body, dict):
            raise JobError(400, "JSON_PARSER_ERROR", "the request body must be a JSON object")
        obj = self.org.object_named(str(body.get("object") or ""))
        if not body.get("object"):
            raise JobError(400, "INVALIDJOB", "The object field is required")
        if obj is None:
            raise JobError(
                400, "INVALIDJOB", f"Unable to find object: {body.get('object')}"
            )
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise JobError(
                400, "INVALIDJOB",
                f"InvalidJob : Invalid operation: {operation}; expected one of "
                + ", ".join(OPERATIONS),
            )
        external_id_field = body.get("externalIdFieldName")
        if operation == "upsert":
            if not external_id_field:
                raise JobError(
                    400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert"
                )
            ext = obj.field_named(external_id_field)
            if ext is None or not (ext.external_id or ext.name == "Id"):
                raise JobError(
                    400, "INVALIDJOB",
                    f"InvalidJob : Field {external_id_field} is not an external id field "
                    f"of {obj.name}",
                )
            external_id_field = ext.name
        elif external_id_field:
            raise JobError(
                400, "INVALIDJOB", "InvalidJob : externalIdFieldName is only valid for upsert"
            )
        content_type = body.get("contentType", "CSV")
        line_ending = body.get("lineEnding", "LF")
        column_delimiter = body.get("columnDelimiter", "COMMA")
        if content_type != "CSV":
            raise JobError(400, "INVALIDJOB", f"InvalidJob : Unsupported contentType: "
                           f"{content_type}")
        if line_ending not in LINE_ENDINGS:
            raise JobError(400, "INVALIDJOB", f"InvalidJob : Invalid lineEnding: {line_ending}")
        if column_delimiter not in COLUMN_DELIMITERS:
            raise JobError(
                400, "INVALIDJOB", f"InvalidJob : Invalid columnDelimiter: {column_delimiter}"
            )
        job = IngestJob(
            id=self.org.ids.new_id("750"),
            object=obj.name,
            operation=operation,
            external_id_field=external_id_field,
            line_ending=line_ending,
            column_delimiter=column_delimiter,
            api_version=api_version,
            assignment_rule_id=body.get("assignmentRuleId"),
            created_date=now_text(),
        )
        faults = self.settings
        with self.lock:
            if faults.fail_next_jobs > 0:
                faults.fail_next_jobs -= 1
                job.fail_with = faults.job_failure_message
                job.fail_after_records = faults.failed_job_processes_records
            self.jobs[job.id] = job
        return job

    def get(self, job_id: str) -> IngestJob:
        with self.lock:
            job = self.jobs.get(job_id) or self.jobs.get(_to_18_or_same(job_id))
        if job is None:
            raise JobError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job_id: str, stream: BinaryIO, content_type: str | None) -> None:
        job = self.get(job_id)
        if not (content_type or "").lower().startswith("text/csv"):
            raise JobError(
                400, "INVALIDCONTENTTYPE", f"Content-Type must be text/csv, got {content_type}"
            )
        with self.lock:
            if job.state != "Open":
                raise JobError(
                    409, "INVALIDJOBSTATE",
                    f"Job {job.id} is in state {job.state}: data can only be uploaded to an "
                    "Open job",
                )
            if job.data_file is not None:
                raise JobError(
                    400, "BULK_API_ERROR",
                    f"Found multiple contents for job: <{job.id}>, please 'Close' / 'Abort' / "
                    "'Delete' the current Job then create a new Job and make sure the content "
                    "is uploaded only once for this Job.",
                )
            job.data_file = ""  # claimed: a concurrent second upload is refused too
        limit = self.settings.max_upload_bytes
        handle, path = tempfile.mkstemp(prefix=f"sfsim-{job.id}-", suffix=".csv",
                                        dir=self.spool_dir)
        size = 0
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in iter(lambda: stream.read(1 << 16), b""):
                    size += len(chunk)
                    if size > limit:
                        raise JobError(
                            413, "REQUEST_ENTITY_TOO_LARGE",
                            f"the upload is over the {limit}-byte limit of a job: split the "
                            "data into several jobs",
                        )
                    out.write(chunk)
        except BaseException:
            os.unlink(path)
            with self.lock:
                job.data_file = None
            raise
        with self.lock:
            job.data_file = path
            job.upload_bytes = size
            job.system_modstamp = now_text()

    def set_state(self, job_id: str, body: Any) -> IngestJob:
        job = self.get(job_id)
        state = body.get("state") if isinstance(body, dict) else None
        with self.lock:
            if state == "UploadComplete":
                if job.state != "Open":
                    raise JobError(
                        409, "INVALIDJOBSTATE",
                        f"Job {job.id} is {job.state}: only an Open job can be closed",
                    )
                job.state = "UploadComplete"
                job.system_modstamp = now_text()
                self._start_running(job)
            elif state == "Aborted":
                if job.state not in ("Open", "UploadComplete", "InProgress"):
                    raise JobError(
                        409, "INVALIDJOBSTATE",
                        f"Job {job.id} is {job.state}: a finished job cannot be aborted",
                    )
                job.aborted.set()
                job.state = "Aborted"
                job.system_modstamp = now_text()
            else:
                raise JobError(
                    400, "INVALIDJOBSTATE",
                    f"state must be UploadComplete or Aborted, got {state!r}",
                )
            return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        with self.lock:
            if job.state not in DELETABLE:
                raise JobError(
                    409, "INVALIDJOBSTATE",
                    f"Job {job.id} is {job.state}: only UploadComplete, JobComplete, Failed "
                    "or Aborted jobs can be deleted",
                )
            job.aborted.set()
            del self.jobs[job.id]
        _remove_files(job)

    def listing(self) -> list[IngestJob]:
        with self.lock:
            return sorted(self.jobs.values(), key=lambda j: j.created_date)

    def result_file(self, job_id: str, kind: str) -> str | None:
        """Path of a result CSV, or None when the job never had data (answered 204)."""
        job = self.get(job_id)
        if kind == "unprocessedrecords":
            if job.state in ("Open", "UploadComplete"):
                # Nothing has been taken up yet: every uploaded row is unprocessed.
                return job.data_file or None
            return job.results.get(kind) or (job.data_file if job.state == "Aborted" else None)
        return job.results.get(kind)

    def reset(self) -> None:
        with self.lock:
            jobs = list(self.jobs.values())
            self.jobs.clear()
            self.batches_processed = 0
        for job in jobs:
            job.aborted.set()
            _remove_files(job)

    # -- keeping jobs across a restart --------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        with self.lock:
            return {"jobs": [job.to_state() for job in self.jobs.values()],
                    "batches_processed": self.batches_processed}

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back the jobs `to_state` saved; `resume` then runs the unfinished ones."""
        assert self.spool_dir is not None
        with self.lock:
            for body in saved["jobs"]:
                job = IngestJob.from_state(body, self.spool_dir)
                self.jobs[job.id] = job
            self.batches_processed = int(saved["batches_processed"])

    def resume(self) -> None:
        """Run on the closed jobs that had not finished when the simulator stopped."""
        with self.lock:
            for job in self.jobs.values():
                if job.state in ("UploadComplete", "InProgress"):
                    self._start_running(job)

    def files(self) -> set[str]:
        """Every file the jobs hold (uploads and results)."""
        with self.lock:
            return {path for job in self.jobs.values() for path in job.files()}

    def stop(self) -> None:
        """Halt the running jobs between internal batches, leaving them unfinished."""
        self.stopping.set()
        with self.lock:
            for job in self.jobs.values():
                job.aborted.set()
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=30)

    # -- processing -------------------------------------------------------------------

    def _start_running(self, job: IngestJob) -> None:
        thread = threading.Thread(
            target=self._run, args=(job,), name=f"sfsim-job-{job.id}", daemon=True
        )
        self.threads.append(thread)
        thread.start()

    def _wait(self, job: IngestJob) -> bool:
        """Sleep the configured step delay; False when the job was aborted meanwhile."""
        return not job.aborted.wait(self.settings.job_delay_seconds)

    def _run(self, job: IngestJob) -> None:
        """UploadComplete → InProgress → a final state; an InProgress job (one resumed after
        a restart) goes on from its last internal batch."""
        started = time.monotonic()
        try:
            if job.state == "UploadComplete":
                if not self._wait(job):
                    return
                with self.lock:
                    if job.state != "UploadComplete":
                        return
                    job.state = "InProgress"
                    job.system_modstamp = now_text()
                self.on_change()
                if not self._wait(job):
                    return
            final_state, message = self._process(job)
            with self.lock:
                if job.state == "InProgress":
                    job.state = final_state
                    job.error_message = message
                    job.processing_ms += int((time.monotonic() - started) * 1000)
                    job.system_modstamp = now_text()
        except _Stopped:
            return
        # A simulator bug must show as a Failed job, not as a job stuck InProgress.
        except Exception as error:
            with self.lock:
                job.state = "Failed"
                job.error_message = f"InternalServerError : {error}"
        self.on_change()

    def _process(self, job: IngestJob) -> tuple[str, str | None]:
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
                writers = _ResultWriters.reopen(job)
            else:
                writers = _ResultWriters.create(job, columns, self.spool_dir)
                with self.lock:
                    job.results = writers.paths()
                    job.result_sizes = writers.sizes()
            try:
                return self._process_rows(job, columns, _skip_rows(reader, job.processed),
                                          writers)
            finally:
                writers.close()

    def _process_rows(
        self, job: IngestJob, columns: list[str], reader: Iterator[list[str]],
        writers: _ResultWriters,
    ) -> tuple[str, str | None]:
        batch: list[list[str]] = []
        done = job.processed

        def run_batch() -> None:
            # The org lock holds a state-file snapshot off until the batch is written
            # whole: records, results and counts.
            with self.org.lock:
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
                    with self.lock:
                        locked = self.random.random() < self.settings.record_lock_failure_rate
                    if locked:
                        raise RecordError(
                            "UNABLE_TO_LOCK_ROW",
                            "unable to obtain exclusive access to this record or 1 records",
                        )
                    result = self.org.write(
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
            if self.settings.shuffle_results:
                self.random.shuffle(outcomes)
            for kind, row, extra in outcomes:
                first, second = extra.split("\x00", 1)
                writers.write(kind, [first, second, *row])
            sizes = writers.sizes()
            with self.lock:
                self.batches_processed += 1
                job.processed += len(batch)
                job.failed += sum(1 for kind, _, _ in outcomes if kind == "failed")
                job.result_sizes = sizes
            done += len(batch)
            batch.clear()
            self.on_change()

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
        obj = self.org.objects[job.object]
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
                parent = self.org.objects[reference.reference_to or ""]
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


class _Stopped(Exception):
    """The simulator is stopping: the job halts where it is, to go on after a restart."""


RESULT_NAMES = {"ok": "successfulResults", "failed": "failedResults",
                "unprocessed": "unprocessedrecords"}


class _ResultWriters:
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
               ) -> _ResultWriters:
        files, paths = {}, {}
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
    def reopen(cls, job: IngestJob) -> _ResultWriters:
        """The files of a job stopped mid-way, cut back to its last whole internal batch."""
        files = {}
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


def _skip_rows(reader: Iterator[list[str]], count: int) -> Iterator[list[str]]:
    """The reader after its first `count` records (blank lines are not records)."""
    skipped = 0
    while skipped < count:
        if next(reader):
            skipped += 1
    return reader


def _remove_files(job: IngestJob) -> None:
    for path in {job.data_file, *job.results.values()}:
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _to_18_or_same(job_id: str) -> str:
    from sfsim.schema import looks_like_id, to_18

    return to_18(job_id) if looks_like_id(job_id) else job_id


Opener = Callable[[str], BinaryIO]
