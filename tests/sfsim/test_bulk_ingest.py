"""Bulk API 2.0 ingest over raw HTTP: job fields, upload, states, listing."""

from __future__ import annotations

import time
from datetime import datetime

import requests

from sfsim.testing import SimulatorHandle
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


def _run_job(api: requests.Session, records: int) -> tuple[float, dict]:
    """An insert job of `records` accounts closed and waited for: the seconds from its close
    to its end by its own timestamps, and its final job info."""
    created = api.post(url(api, f"{V}/jobs/ingest"), json={
        "object": "Account", "operation": "insert", "contentType": "CSV",
        "lineEnding": "LF"}).json()
    data = "Name\n" + "".join(f"Account {n}\n" for n in range(records))
    api.put(url(api, "/" + created["contentUrl"]), data=data.encode(),
            headers={"Content-Type": "text/csv"})
    job_url = url(api, f"{V}/jobs/ingest/{created['id']}")
    closed = api.patch(job_url, json={"state": "UploadComplete"}).json()
    info = closed
    while info["state"] not in ("JobComplete", "Failed", "Aborted"):
        time.sleep(0.02)
        info = api.get(job_url).json()

    def at(job: dict) -> datetime:
        return datetime.strptime(job["systemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")

    # Subtracted as datetimes: exact to the millisecond (floats of epoch seconds are not).
    return (at(info) - at(closed)).total_seconds(), info


def test_ingest_jobs_queue_for_varying_times_with_a_jitter(
    api: requests.Session, sfsim: SimulatorHandle,
) -> None:
    sfsim.configure(job_delay_seconds=0.2, job_delay_jitter=1.0)

    durations = [_run_job(api, 1)[0] for _ in range(6)]

    # Two steps of 0-0.4 s each: without the jitter every job takes 0.4 s.
    assert max(durations) - min(durations) > 0.1, durations


def test_active_processing_time_leaves_out_the_time_queued(
    api: requests.Session, sfsim: SimulatorHandle,
) -> None:
    sfsim.configure(job_delay_seconds=0.2)

    duration, info = _run_job(api, 1)

    assert duration >= 0.4
    assert info["totalProcessingTime"] >= 400
    assert info["apiActiveProcessingTime"] < 200
