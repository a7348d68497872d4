"""One Bulk API 2.0 ingest job: its fields, its job info, and its saved form."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from sfsim.bulk_jobs import COLUMN_DELIMITERS, job_info_fields

TERMINAL = ("JobComplete", "Failed", "Aborted")
DELETABLE = ("UploadComplete", *TERMINAL)


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
    active_ms: int = 0
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
                apiActiveProcessingTime=self.active_ms,
                apexProcessingTime=0,
                numberRecordsProcessed=self.processed,
                numberRecordsFailed=self.failed,
            )
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body
