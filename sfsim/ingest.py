"""Bulk API 2.0 ingest jobs as requests see them: create, upload (kept on disk), close,
abort, delete, list, results; and the jobs kept across a restart.

Uploaded data and result files live in temporary files (beside the state file when there
is one), so a job of any size costs the simulator little memory. Closed jobs run in
`sfsim.ingest_run`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

from sfsim.bulk_jobs import COLUMN_DELIMITERS, LINE_ENDINGS, JobError
from sfsim.ingest_job import DELETABLE, IngestJob
from sfsim.ingest_run import IngestRunner
from sfsim.org import OPERATIONS, Org, now_text


class IngestJobs:
    """Every ingest job of the org; thread-safe."""

    def __init__(self, org: Org, settings: Any, spool_dir: str | None = None,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.org = org
        self.settings = settings
        self.spool_dir = spool_dir
        self.jobs: dict[str, IngestJob] = {}
        self.lock = threading.RLock()
        self.batches_processed = 0
        # Called when a job moves on its own (state, progress), for the state file.
        self.on_change = on_change
        self.runner = IngestRunner(self)

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

    def upload(self, job_id: str, stream: IO[bytes], content_type: str | None) -> None:
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
                self.runner.start(job)
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
                    self.runner.start(job)

    def files(self) -> set[str]:
        """Every file the jobs hold (uploads and results)."""
        with self.lock:
            return {path for job in self.jobs.values() for path in job.files()}

    def stop(self) -> None:
        """Halt the running jobs between internal batches, leaving them unfinished."""
        self.runner.stop()


def _remove_files(job: IngestJob) -> None:
    for path in job.files():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _to_18_or_same(job_id: str) -> str:
    from sfsim.schema import looks_like_id, to_18

    return to_18(job_id) if looks_like_id(job_id) else job_id
