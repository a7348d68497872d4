"""Bulk API 2.0 ingest: every step its own method, so an orchestrator can put a durable
timer between them; CSV goes up and comes back as streams, never whole in memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, BinaryIO
from urllib.parse import urlencode

from shared.salesforce.bulk_csv import (
    COLUMN_DELIMITERS,
    LINE_ENDINGS,
    MAX_UPLOAD_BYTES,
    read_ingest_csv,
    read_ingest_csv_rows,
    split_ingest_csv,
    stream_of_chunks,
)
from shared.salesforce.errors import SalesforceError
from shared.salesforce.session import SalesforceSession

log = logging.getLogger(__name__)

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
RESULT_CHUNK_BYTES = 64 * 1024


@dataclass
class IngestJob:
    """A Bulk API 2.0 ingest job as Salesforce last reported it (`raw` has every field)."""

    id: str
    object: str
    operation: str
    state: str
    external_id_field: str | None
    number_records_processed: int
    number_records_failed: int
    error_message: str | None
    raw: dict[str, Any]

    TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def system_modstamp(self) -> datetime | None:
        """When Salesforce last changed the job (closed it, ended it); None when it did not
        say in a form this reads."""
        text = self.raw.get("systemModstamp")
        try:
            return datetime.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            return None

    @property
    def active_processing_seconds(self) -> float | None:
        """Seconds Salesforce spent applying the job's records, not counting the time the
        job was queued (apiActiveProcessingTime); None when it did not say."""
        value = self.raw.get("apiActiveProcessingTime")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value / 1000

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> IngestJob:
        return cls(
            id=str(body["id"]),
            object=str(body.get("object", "")),
            operation=str(body.get("operation", "")),
            state=str(body.get("state", "")),
            external_id_field=body.get("externalIdFieldName"),
            number_records_processed=int(body.get("numberRecordsProcessed") or 0),
            number_records_failed=int(body.get("numberRecordsFailed") or 0),
            error_message=body.get("errorMessage") or None,
            raw=dict(body),
        )


class BulkIngestApi(SalesforceSession):
    def create_ingest_job(
        self,
        sobject: str,
        operation: str,
        external_id_field: str | None = None,
        line_ending: str = "LF",
        column_delimiter: str = "COMMA",
        assignment_rule_id: str | None = None,
    ) -> IngestJob:
        if operation not in INGEST_OPERATIONS:
            raise ValueError(
                f"operation must be one of {', '.join(INGEST_OPERATIONS)}, got {operation!r}"
            )
        if (operation == "upsert") != (external_id_field is not None):
            raise ValueError("an external id field is needed for upsert, and only for upsert")
        if line_ending not in LINE_ENDINGS:
            raise ValueError(f"line_ending must be one of {', '.join(LINE_ENDINGS)}")
        if column_delimiter not in COLUMN_DELIMITERS:
            raise ValueError(f"column_delimiter must be one of {', '.join(COLUMN_DELIMITERS)}")
        body: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": line_ending,
            "columnDelimiter": column_delimiter,
        }
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        if assignment_rule_id:
            body["assignmentRuleId"] = assignment_rule_id
        response = self.request("POST", "jobs/ingest", json=body, expected=(200, 201))
        return self._job(response.json())

    def upload_job_data(self, job_id: str, csv_stream: BinaryIO | Iterable[bytes]) -> None:
        """PUT the job's CSV, streamed (a job takes one upload only, of at most 100 MB).

        `csv_stream` is a binary file-like object (sent with its length when it has one) or
        an iterable of byte chunks, such as a blob download's `chunks()` (sent chunked).
        A seekable stream can be repeated after a token refresh; an iterable cannot.
        A timeout is not retried (Salesforce may have stored the data): after a
        `SalesforceTransientError` here, abort the job and load the part into a new one.
        """
        self.request(
            "PUT",
            f"jobs/ingest/{job_id}/batches",
            headers={"Content-Type": "text/csv"},
            body_stream=csv_stream,
            expected=(201,),
        ).close()

    def close_job(self, job_id: str) -> IngestJob:
        return self._set_state(job_id, "UploadComplete")

    def abort_job(self, job_id: str) -> IngestJob:
        return self._set_state(job_id, "Aborted")

    def _set_state(self, job_id: str, state: str) -> IngestJob:
        response = self.request("PATCH", f"jobs/ingest/{job_id}", json={"state": state})
        return self._job(response.json())

    def get_job(self, job_id: str) -> IngestJob:
        return self._job(self.request("GET", f"jobs/ingest/{job_id}").json())

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"jobs/ingest/{job_id}", expected=(204,)).close()
        self._job_delimiters.pop(job_id, None)

    def list_jobs(self, is_pk_chunking_enabled: bool | None = None,
                  job_type: str | None = None) -> Iterator[IngestJob]:
        """Every ingest job of the org, following `nextRecordsUrl`; `job_type` V2Ingest
        keeps the Bulk API 2.0 jobs (Classic: Bulk API 1.0, BigObjectIngest)."""
        filters = {"jobType": job_type} if job_type else {}
        if is_pk_chunking_enabled is not None:
            filters["isPkChunkingEnabled"] = str(is_pk_chunking_enabled).lower()
        path: str | None = "jobs/ingest" + (f"?{urlencode(filters)}" if filters else "")
        while path:
            body = self.request("GET", path).json()
            for record in body.get("records", []):
                yield IngestJob.from_json(record)
            next_url = body.get("nextRecordsUrl")
            prefix = f"/services/data/v{self.credentials.api_version}/"
            path = next_url[len(prefix) :] if next_url and next_url.startswith(prefix) else None

    def successful_results(self, job_id: str) -> Iterator[dict[str, str]]:
        """Rows `sf__Id, sf__Created` + the uploaded columns; order is not the input order."""
        return self._results(job_id, "successfulResults")

    def failed_results(self, job_id: str) -> Iterator[dict[str, str]]:
        """Rows `sf__Id, sf__Error` ("CODE:message") + the uploaded columns."""
        return self._results(job_id, "failedResults")

    def unprocessed_records(self, job_id: str) -> Iterator[dict[str, str]]:
        """The uploaded rows Salesforce never got to (aborted or failed job)."""
        return self._results(job_id, "unprocessedrecords")

    def result_rows(self, job_id: str, kind: str) -> Iterator[list[str]]:
        """A result list (`successfulResults`, `failedResults`, `unprocessedrecords`) as
        lists of values, its header first (nothing when it is empty): for a caller that
        maps columns once per job instead of building a dict per row."""
        return self._results(job_id, kind, read_ingest_csv_rows)

    def copy_results(self, job_id: str, kind: str, out: IO[bytes]) -> int:
        """Write a result list's CSV to `out` as Salesforce sent it, without parsing it (in
        the job's column delimiter); returns the bytes written, 0 for an empty list."""
        response = self.request(
            "GET", f"jobs/ingest/{job_id}/{kind}/", stream=True, expected=(200, 204)
        )
        written = 0
        with response:
            if response.status_code == 204:
                return 0
            for chunk in response.iter_content(RESULT_CHUNK_BYTES):
                out.write(chunk)
                written += len(chunk)
        return written

    def _results(self, job_id: str, kind: str,
                 read: Callable[[BinaryIO, str], Iterator[Any]] = read_ingest_csv,
                 ) -> Iterator[Any]:
        delimiter = self._job_delimiters.get(job_id) or self.get_job(job_id).raw.get(
            "columnDelimiter", "COMMA"
        )
        response = self.request(
            "GET", f"jobs/ingest/{job_id}/{kind}/", stream=True, expected=(200, 204)
        )
        with response:
            if response.status_code == 204:
                return
            # iter_content, not response.raw: the same decoded bytes whatever the framing
            # (a Content-Length body closes the raw stream at its end) or the encoding.
            body = stream_of_chunks(response.iter_content(RESULT_CHUNK_BYTES))
            yield from read(body, delimiter)

    def _job(self, body: Mapping[str, Any]) -> IngestJob:
        job = IngestJob.from_json(body)
        if "columnDelimiter" in body:
            self._job_delimiters[job.id] = str(body["columnDelimiter"])
        return job

    def submit_ingest_load(
        self,
        sobject: str,
        operation: str,
        csv_stream: BinaryIO,
        external_id_field: str | None = None,
        line_ending: str = "LF",
        column_delimiter: str = "COMMA",
        max_part_bytes: int = MAX_UPLOAD_BYTES,
    ) -> list[IngestJob]:
        """Create, fill and close one job per part of a load split below the upload limit.

        Returns the closed jobs; poll them with `get_job`. A part whose upload or close
        fails has its job aborted before the error is raised, so no job is left half
        filled; parts submitted before it stay submitted. An orchestrator that must resume
        after a crash runs the steps itself (`split_ingest_csv`, then create, upload and
        close per part) and records each job id as it goes.
        """
        jobs: list[IngestJob] = []
        for _part, part_stream in split_ingest_csv(csv_stream, max_part_bytes):
            job = self.create_ingest_job(
                sobject, operation, external_id_field, line_ending, column_delimiter
            )
            try:
                self.upload_job_data(job.id, part_stream)
                jobs.append(self.close_job(job.id))
            except BaseException:
                self._abort_quietly(job.id)
                raise
        return jobs

    def _abort_quietly(self, job_id: str) -> None:
        try:
            self.abort_job(job_id)
        except SalesforceError as error:
            log.warning("could not abort ingest job %s: %s", job_id, error)
