"""Salesforce: OAuth logins, sObject Collections upsert and Bulk API 2.0 ingest over requests."""

from shared.salesforce.bulk_csv import (
    MAX_UPLOAD_BYTES,
    NULL_MARKER,
    CsvPart,
    ingest_csv_bytes,
    read_ingest_csv,
    read_ingest_csv_rows,
    split_ingest_csv,
    write_ingest_csv,
    write_ingest_csv_lines,
)
from shared.salesforce.client import (
    IngestJob,
    RecordOutcome,
    SalesforceClient,
    SalesforceCredentials,
    process_client,
)
from shared.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    SalesforceLimitError,
    SalesforceTransientError,
)

__all__ = [
    "MAX_UPLOAD_BYTES",
    "NULL_MARKER",
    "CsvPart",
    "IngestJob",
    "RecordOutcome",
    "SalesforceAuthError",
    "SalesforceClient",
    "SalesforceCredentials",
    "SalesforceError",
    "SalesforceLimitError",
    "SalesforceTransientError",
    "ingest_csv_bytes",
    "process_client",
    "read_ingest_csv",
    "read_ingest_csv_rows",
    "split_ingest_csv",
    "write_ingest_csv",
    "write_ingest_csv_lines",
]
