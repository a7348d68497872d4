"""Bulk API 2.0 query jobs (`/jobs/query`): what jsforce, simple-salesforce and the
Salesforce CLI use to read data back in bulk.

A job runs its SOQL after the configured delay (UploadComplete → InProgress →
JobComplete) and keeps the rows; `GET .../results?maxRecords=&locator=` pages through them
as CSV with the `Sforce-Locator` (`null` on the last page) and `Sforce-NumberOfRecords`
headers. Parent fields are columns named `Account.Name`.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from sfsim import soql
from sfsim.bulk_jobs import COLUMN_DELIMITERS, LINE_ENDINGS, JobError, job_info_fields
from sfsim.org import Org, now_text

DEFAULT_PAGE = 50_000


@dataclass
class QueryJob:
    id: str
    operation: str
    object: str
    query: str
    line_ending: str
    column_delimiter: str
    api_version: str
    created_date: str
    state: str = "UploadComplete"
    system_modstamp: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0
    error_message: str | None = None
    aborted: threading.Event = field(default_factory=threading.Event)

    def to_state(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "aborted"}

    def to_json(self, full: bool = True) -> dict[str, Any]:
        body = job_info_fields(self)
        if full:
            body.update(
                jobType="V2Query",
                numberRecordsProcessed=len(self.rows),
                retries=0,
                totalProcessingTime=self.processing_ms,
                isPkChunkingSupported=True,
            )
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


class QueryJobs:
    def __init__(self, org: Org, settings: Any,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.org = org
        self.settings = settings
        self.jobs: dict[str, QueryJob] = {}
        self.lock = threading.RLock()
        # Called when a job moves on its own, for the state file.
        self.on_change = on_change

    def create(self, body: Any, api_version: str) -> QueryJob:
        if not isinstance(body, dict) or not body.get("query"):
            raise JobError(400, "INVALIDJOB", "InvalidJob : The query field is required")
        operation = body.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise JobError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        line_ending = body.get("lineEnding", "LF")
        column_delimiter = body.get("columnDelimiter", "COMMA")
        if line_ending not in LINE_ENDINGS or column_delimiter not in COLUMN_DELIMITERS:
            raise JobError(400, "INVALIDJOB", "InvalidJob : Invalid lineEnding or columnDelimiter")
        try:
            parsed = soql.parse_query(str(body["query"]), self.org)
        except soql.QueryError as error:
            raise JobError(400, "API_ERROR", f"{error.code}: {error.message}") from None
        if parsed.count_only:
            raise JobError(400, "API_ERROR", "FeatureNotEnabled : Aggregate queries are not "
                           "supported by Bulk API 2.0")
        job = QueryJob(
            id=self.org.ids.new_id("750"), operation=operation, object=parsed.sobject,
            query=str(body["query"]), line_ending=line_ending,
            column_delimiter=column_delimiter, api_version=api_version,
            created_date=now_text(),
        )
        with self.lock:
            self.jobs[job.id] = job
        self._start_running(job)
        return job

    def _start_running(self, job: QueryJob) -> None:
        threading.Thread(target=self._run, args=(job,), daemon=True,
                         name=f"sfsim-query-{job.id}").start()

    def _run(self, job: QueryJob) -> None:
        """UploadComplete → InProgress → a final state; an InProgress job (one resumed after
        a restart) runs its query again."""
        started = time.monotonic()
        delay = self.settings.job_delay_seconds
        if job.state == "UploadComplete":
            if job.aborted.wait(delay):
                return
            with self.lock:
                if job.state != "UploadComplete":
                    return
                job.state = "InProgress"
            self.on_change()
            if job.aborted.wait(delay):
                return
        try:
            parsed, records = soql.run_query(job.query, self.org)
            job.columns = list(parsed.fields)
            job.rows = [
                [_csv_text(soql.resolve_path(self.org, parsed.sobject, r, name))
                 for name in parsed.fields]
                for r in records
            ]
            final, message = "JobComplete", None
        except soql.QueryError as error:
            final, message = "Failed", f"{error.code}: {error.message}"
        with self.lock:
            if job.state == "InProgress":
                job.state = final
                job.error_message = message
                job.processing_ms = int((time.monotonic() - started) * 1000)
                job.system_modstamp = now_text()
        self.on_change()

    def get(self, job_id: str) -> QueryJob:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise JobError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def abort(self, job_id: str, body: Any) -> QueryJob:
        job = self.get(job_id)
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise JobError(400, "INVALIDJOBSTATE", "a query job can only be set to Aborted")
        with self.lock:
            if job.state not in ("UploadComplete", "InProgress"):
                raise JobError(409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}: a "
                               "finished job cannot be aborted")
            job.aborted.set()
            job.state = "Aborted"
            job.system_modstamp = now_text()
        return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        with self.lock:
            if job.state not in ("JobComplete", "Failed", "Aborted"):
                raise JobError(409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}: only "
                               "a finished job can be deleted")
            del self.jobs[job.id]

    def results(self, job_id: str, locator: str | None, max_records: str | None
                ) -> tuple[bytes, str, int]:
        """(CSV page, next locator or "null", rows in the page)."""
        job = self.get(job_id)
        if job.state != "JobComplete":
            raise JobError(400, "INVALIDJOBSTATE",
                           f"Job {job.id} is {job.state}: results are available once it is "
                           "JobComplete")
        try:
            start = int(locator) if locator and locator != "null" else 0
            size = int(max_records) if max_records else DEFAULT_PAGE
        except ValueError:
            raise JobError(400, "INVALID_LOCATOR", "locator and maxRecords are numbers") from None
        if size <= 0 or start < 0:
            raise JobError(400, "INVALID_LOCATOR", "maxRecords must be above 0")
        page = job.rows[start : start + size]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=COLUMN_DELIMITERS[job.column_delimiter],
                            lineterminator=LINE_ENDINGS[job.line_ending],
                            quoting=csv.QUOTE_ALL)
        writer.writerow(job.columns)
        writer.writerows(page)
        end = start + len(page)
        next_locator = str(end) if end < len(job.rows) else "null"
        return out.getvalue().encode("utf-8"), next_locator, len(page)

    def listing(self) -> list[QueryJob]:
        with self.lock:
            return sorted(self.jobs.values(), key=lambda j: j.created_date)

    def reset(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                job.aborted.set()
            self.jobs.clear()

    def to_state(self) -> list[dict[str, Any]]:
        with self.lock:
            return [job.to_state() for job in self.jobs.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        """Take back the jobs `to_state` saved; `resume` then runs the unfinished ones."""
        with self.lock:
            for body in saved:
                job = QueryJob(**body)
                self.jobs[job.id] = job

    def resume(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                if job.state in ("UploadComplete", "InProgress"):
                    self._start_running(job)

    def stop(self) -> None:
        """Halt the jobs still waiting for their next state."""
        with self.lock:
            for job in self.jobs.values():
                job.aborted.set()


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
