"""What Bulk API 2.0 ingest and query jobs share: line endings, column delimiters, the
fields of a job's info and the error a refused job request raises."""

from __future__ import annotations

from typing import Any

from sfsim.standard import USER_ID

LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
COLUMN_DELIMITERS = {
    "COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`",
}


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
