"""Bulk API 2.0 query jobs: lifecycle, paged CSV results, errors."""

from __future__ import annotations

import time

import requests

from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, url


def test_bulk_query_job_lifecycle(api: requests.Session, sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": f"B{i}", "NumberOfEmployees": i} for i in range(5)])
    job = api.post(url(api, f"{V}/jobs/query"), json={
        "operation": "query", "query": "SELECT Name, NumberOfEmployees FROM Account "
        "WHERE NumberOfEmployees >= 2 ORDER BY Name"}).json()
    assert (job["state"], job["object"]) == ("UploadComplete", "Account")
    early = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"))
    assert early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    deadline = time.monotonic() + 10
    while api.get(url(api, f"{V}/jobs/query/{job['id']}")).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    page = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"), params={"maxRecords": 2})
    assert page.headers["Sforce-Locator"] == "2"
    assert page.headers["Sforce-NumberOfRecords"] == "2"
    assert page.text == '"Name","NumberOfEmployees"\n"B2","2"\n"B3","3"\n'
    last = api.get(url(api, f"{V}/jobs/query/{job['id']}/results"),
                   params={"maxRecords": 2, "locator": "2"})
    assert last.headers["Sforce-Locator"] == "null"
    assert last.text.splitlines()[1:] == ['"B4","4"']
    assert api.delete(url(api, f"{V}/jobs/query/{job['id']}")).status_code == 204
    bad = api.post(url(api, f"{V}/jobs/query"), json={"query": "SELECT Nope FROM Account"})
    assert (bad.status_code, bad.json()[0]["errorCode"]) == (400, "API_ERROR")
