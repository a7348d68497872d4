"""Bulk API 2.0 ingest over raw HTTP: job fields, upload, states, listing."""

from __future__ import annotations

import requests

from tests.sfsim.api_calls import V, url


def test_ingest_job_fields_and_raw_endpoints(api: requests.Session) -> None:
    created = api.post(url(api, f"{V}/jobs/ingest"), json={
        "object": "Account", "operation": "insert", "contentType": "CSV",
        "lineEnding": "LF", "columnDelimiter": "COMMA"}).json()
    assert created["state"] == "Open"
    assert created["contentUrl"] == f"services/data/v62.0/jobs/ingest/{created['id']}/batches"
    assert created["apiVersion"] == 62.0 and created["concurrencyMode"] == "Parallel"
    batches = url(api, "/" + created["contentUrl"])
    wrong_type = api.put(batches, data=b"Name\nx\n", headers={"Content-Type": "text/plain"})
    assert wrong_type.json()[0]["errorCode"] == "INVALIDCONTENTTYPE"
    put = api.put(batches, data=b"Name\nx\n", headers={"Content-Type": "text/csv"})
    assert (put.status_code, put.content) == (201, b"")
    info = api.get(url(api, f"{V}/jobs/ingest/{created['id']}")).json()
    for name in ("jobType", "retries", "totalProcessingTime", "apiActiveProcessingTime",
                 "apexProcessingTime", "numberRecordsProcessed", "numberRecordsFailed"):
        assert name in info
    bad_state = api.patch(url(api, f"{V}/jobs/ingest/{created['id']}"), json={"state": "Open"})
    assert bad_state.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    listing = api.get(url(api, f"{V}/jobs/ingest")).json()
    assert listing["done"] is True and listing["records"][0]["id"] == created["id"]
    assert api.get(url(api, f"{V}/jobs/ingest/750000000000000AAA")).status_code == 404
