"""Result downloads come framed as real servers frame them: Content-Length or chunked,
gzip when asked for. Read with raw sockets (http.client) to see the framing itself."""

from __future__ import annotations

import csv
import gzip
import http.client
import io
import time
from urllib.parse import urlsplit

import pytest
import requests

from sfsim.downloads import SMALL_BODY_BYTES
from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, access_token


def _raw_get(sim: SimulatorHandle, path: str, token: str, accept_gzip: bool
             ) -> tuple[http.client.HTTPResponse, bytes]:
    parts = urlsplit(sim.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}",
               "Accept-Encoding": "gzip" if accept_gzip else "identity"}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def _finished_insert_job(sim: SimulatorHandle, token: str, rows: int) -> str:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{sim.base_url}{V}/jobs/ingest"
    job = session.post(base, json={"object": "Account", "operation": "insert"}, timeout=10).json()
    data = "Name\n" + "".join(f"Account number {i:06}\n" for i in range(rows))
    session.put(f"{base}/{job['id']}/batches", data=data.encode(),
                headers={"Content-Type": "text/csv"}, timeout=10)
    session.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}, timeout=10)
    deadline = time.monotonic() + 30
    while session.get(f"{base}/{job['id']}", timeout=10).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline, "the ingest job did not finish"
        time.sleep(0.02)
    return job["id"]


@pytest.mark.parametrize(
    ("framing", "rows", "accept_gzip", "expect_length", "expect_gzip"),
    [
        ("auto", 10, False, True, False),
        ("auto", 5000, False, False, False),
        ("auto", 5000, True, False, True),
        ("auto", 10, True, True, True),
        ("content-length", 5000, False, True, False),
        ("content-length", 5000, True, True, True),
        ("chunked", 10, False, False, False),
        ("chunked", 10, True, False, True),
    ],
)
def test_ingest_results_are_framed_by_size_and_setting(
    sfsim: SimulatorHandle, framing: str, rows: int, accept_gzip: bool, expect_length: bool,
    expect_gzip: bool,
) -> None:
    sfsim.configure(download_framing=framing)
    token = access_token(sfsim)
    job_id = _finished_insert_job(sfsim, token, rows)

    response, body = _raw_get(sfsim, f"{V}/jobs/ingest/{job_id}/successfulResults", token,
                              accept_gzip)

    assert response.status == 200
    assert (response.getheader("Content-Length") is not None) == expect_length
    assert (response.getheader("Transfer-Encoding") == "chunked") == (not expect_length)
    assert (response.getheader("Content-Encoding") == "gzip") == expect_gzip
    text = (gzip.decompress(body) if expect_gzip else body).decode("utf-8")
    if expect_length:
        assert int(response.getheader("Content-Length")) == len(body)
    assert len(list(csv.DictReader(io.StringIO(text)))) == rows
    # 10 rows are below the size at which "auto" switches to chunked, 5000 above it.
    assert (len(text) > SMALL_BODY_BYTES) == (rows == 5000)


def test_gzip_can_be_switched_off(sfsim: SimulatorHandle) -> None:
    sfsim.configure(download_gzip=False)
    token = access_token(sfsim)
    job_id = _finished_insert_job(sfsim, token, 10)
    response, body = _raw_get(sfsim, f"{V}/jobs/ingest/{job_id}/successfulResults", token, True)
    assert response.getheader("Content-Encoding") is None
    assert body.startswith(b'"sf__Id"') or body.startswith(b"sf__Id")


@pytest.mark.parametrize(("framing", "accept_gzip"),
                         [("content-length", False), ("chunked", True)])
def test_query_job_results_are_framed_by_setting_and_keep_their_headers(
    sfsim: SimulatorHandle, framing: str, accept_gzip: bool
) -> None:
    sfsim.insert_records("Account", [{"Name": f"Q{i}"} for i in range(3)])
    sfsim.configure(download_framing=framing)
    token = access_token(sfsim)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{sfsim.base_url}{V}/jobs/query"
    job = session.post(base, json={"operation": "query", "query": "SELECT Name FROM Account"},
                       timeout=10).json()
    deadline = time.monotonic() + 30
    while session.get(f"{base}/{job['id']}", timeout=10).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline, "the query job did not finish"
        time.sleep(0.02)

    response, body = _raw_get(sfsim, f"{V}/jobs/query/{job['id']}/results?maxRecords=2", token,
                              accept_gzip)

    assert (response.getheader("Content-Length") is not None) == (framing == "content-length")
    assert (response.getheader("Content-Encoding") == "gzip") == accept_gzip
    assert response.getheader("Sforce-Locator") == "2"
    assert response.getheader("Sforce-NumberOfRecords") == "2"
    text = (gzip.decompress(body) if accept_gzip else body).decode("utf-8")
    assert text.splitlines()[0] == '"Name"'
    assert len(text.splitlines()) == 3


def test_an_unknown_framing_is_refused(sfsim: SimulatorHandle) -> None:
    with pytest.raises(RuntimeError, match="download_framing"):
        sfsim.configure(download_framing="carrier-pigeon")
