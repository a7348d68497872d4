"""`--state FILE`: the org outlives a restart of the simulator (SIGINT, SIGTERM, SIGKILL)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from sfsim.settings import SimSettings
from sfsim.state import read_state_file
from sfsim.testing import SimulatorHandle, start_simulator
from tests.sfsim.api_calls import V, access_token

REPO = Path(__file__).resolve().parents[2]
ROWS_PER_INTERNAL_BATCH = 10_000


def start(state_file: Path, job_delay: float = 0.02) -> SimulatorHandle:
    return start_simulator(
        SimSettings(job_delay_seconds=job_delay, state_file=str(state_file)),
        in_subprocess=True,
    )


def logged_in(sim: SimulatorHandle, token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token or access_token(sim)}"
    session.base = sim.base_url + V  # type: ignore[attr-defined]
    return session


def call(api: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = api.request(method, api.base + path, timeout=30, **kwargs)  # type: ignore[attr-defined]
    assert response.status_code < 400, response.text
    return response


def closed_ingest_job(api: requests.Session, csv: str) -> str:
    job_id = call(api, "POST", "/jobs/ingest",
                  json={"object": "Account", "operation": "insert"}).json()["id"]
    call(api, "PUT", f"/jobs/ingest/{job_id}/batches", data=csv.encode(),
         headers={"Content-Type": "text/csv"})
    call(api, "PATCH", f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"})
    return job_id


def wait_for(condition: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def finished_job(api: requests.Session, job_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        info = call(api, "GET", f"/jobs/ingest/{job_id}").json()
        return info if info["state"] in ("JobComplete", "Failed", "Aborted") else None

    return wait_for(finished, f"job {job_id} to finish")


def saved_job(state_file: Path, job_id: str) -> dict[str, Any] | None:
    saved = read_state_file(state_file)
    jobs = saved["ingest_jobs"]["jobs"] if saved else []
    return next((job for job in jobs if job["id"] == job_id), None)


def accounts_csv(count: int) -> str:
    return "Name,External_Id__c\n" + "".join(f"Account {n},EXT-{n}\n" for n in range(count))


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_records_jobs_and_tokens_survive_a_stop_and_a_restart(
    tmp_path: Path, stop_signal: int
) -> None:
    state_file = tmp_path / "org.json"
    sim = start(state_file)
    api = logged_in(sim)
    token = api.headers["Authorization"]
    ids = sim.insert_records("Account", [{"Name": "Acme", "External_Id__c": "A-1"}])
    job_id = closed_ingest_job(api, "Name,External_Id__c\nGlobex,G-1\nbad\n")
    job = finished_job(api, job_id)
    results = call(api, "GET", f"/jobs/ingest/{job_id}/successfulResults").content
    failures = call(api, "GET", f"/jobs/ingest/{job_id}/failedResults").content
    query_job = call(api, "POST", "/jobs/query",
                     json={"operation": "query", "query": "SELECT Name FROM Account"}).json()
    wait_for(lambda: call(api, "GET", f"/jobs/query/{query_job['id']}").json()["state"]
             == "JobComplete", "the query job")
    accounts = sim.records("Account")
    sim.stop(stop_signal)
    assert sim._process is not None and sim._process.returncode == 0

    again = start(state_file)
    api = logged_in(again)
    api.headers["Authorization"] = token  # the token issued before the restart still works
    assert again.records("Account") == accounts
    assert call(api, "GET", f"/jobs/ingest/{job_id}").json() == job
    assert call(api, "GET", f"/jobs/ingest/{job_id}/successfulResults").content == results
    assert call(api, "GET", f"/jobs/ingest/{job_id}/failedResults").content == failures
    rows = call(api, "GET", f"/jobs/query/{query_job['id']}/results").text
    assert sorted(rows.splitlines()[1:]) == ['"Acme"', '"Globex"']
    assert call(api, "GET", f"/sobjects/Account/{ids[0]}").json()["Name"] == "Acme"
    new_id = again.insert_records("Account", [{"Name": "Initech"}])[0]
    assert new_id not in {a["Id"] for a in accounts}  # ids go on where they stopped
    users = call(api, "GET", "/query", params={"q": "SELECT Username FROM User"}).json()
    assert [u["Username"] for u in users["records"]] == [again.username]
    again.stop()


def test_a_stop_without_warning_keeps_what_was_saved(tmp_path: Path) -> None:
    state_file = tmp_path / "org.json"
    sim = start(state_file)
    sim.insert_records("Account", [{"Name": "Acme"}, {"Name": "Globex"}])
    accounts = sim.records("Account")

    def saved_accounts() -> bool:
        saved = read_state_file(state_file)
        return saved is not None and len(saved["org"]["records"]["Account"]) == 2

    wait_for(saved_accounts, "the save after the change")
    sim.stop(signal.SIGKILL)

    again = start(state_file)
    assert again.records("Account") == accounts
    again.stop()


def test_a_job_closed_before_the_stop_runs_after_the_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "org.json"
    sim = start(state_file, job_delay=600)  # the job waits in UploadComplete
    api = logged_in(sim)
    job_id = closed_ingest_job(api, accounts_csv(3))
    wait_for(lambda: (saved_job(state_file, job_id) or {}).get("state") == "UploadComplete",
             "the closed job in the state file")
    sim.stop(signal.SIGKILL)

    again = start(state_file)
    job = finished_job(logged_in(again), job_id)
    assert (job["state"], job["numberRecordsProcessed"]) == ("JobComplete", 3)
    assert sorted(a["Name"] for a in again.records("Account")) == [
        "Account 0", "Account 1", "Account 2"]
    again.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGKILL],
                         ids=["SIGINT", "SIGKILL"])
def test_a_job_stopped_mid_way_goes_on_from_its_last_internal_batch(
    tmp_path: Path, stop_signal: int
) -> None:
    """Every row is written once: none lost, none twice, whatever the stop interrupted."""
    rows = 3 * ROWS_PER_INTERNAL_BATCH
    state_file = tmp_path / "org.json"
    sim = start(state_file)
    # Paced as Salesforce works through internal batches: the stop lands between two of
    # them, however fast this machine writes records.
    sim.configure(internal_batch_seconds=2.0)
    api = logged_in(sim)
    job_id = closed_ingest_job(api, accounts_csv(rows))
    wait_for(lambda: call(api, "GET", f"/jobs/ingest/{job_id}").json()[
        "numberRecordsProcessed"] >= ROWS_PER_INTERNAL_BATCH, "the first internal batch")
    if stop_signal == signal.SIGKILL:
        wait_for(lambda: (saved_job(state_file, job_id) or {}).get("processed", 0)
                 >= ROWS_PER_INTERNAL_BATCH, "the first internal batch in the state file")
    sim.stop(stop_signal)
    saved = saved_job(state_file, job_id)
    assert saved is not None
    assert saved["state"] == "InProgress" and 0 < saved["processed"] < rows + 1
    # What a stop without warning leaves behind: result rows written after the last save.
    for name in saved["results"].values():
        with open(state_file.with_name("org-files") / name, "a") as result:
            result.write('"written after the save","true","x","y"\n')

    again = start(state_file)
    api = logged_in(again)
    job = finished_job(api, job_id)
    assert (job["state"], job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (
        "JobComplete", rows, 0)
    accounts = again.records("Account")
    assert len(accounts) == rows
    assert {a["External_Id__c"] for a in accounts} == {f"EXT-{n}" for n in range(rows)}
    results = call(api, "GET", f"/jobs/ingest/{job_id}/successfulResults").text.splitlines()
    assert results[0] == '"sf__Id","sf__Created","Name","External_Id__c"'
    assert sorted(line.split(",")[0].strip('"') for line in results[1:]) == sorted(
        a["Id"] for a in accounts)
    again.stop()


@pytest.mark.parametrize("content", ["{\"format\": \"sfsim-org/1\", \"org\": ", "[]",
                                     "{\"format\": \"sfsim-org/1\"}", ""])
def test_a_state_file_that_cannot_be_loaded_stops_the_start(tmp_path: Path, content: str) -> None:
    state_file = tmp_path / "org.json"
    state_file.write_text(content)
    completed = subprocess.run(
        [sys.executable, "-m", "sfsim", "--port", "0", "--state", str(state_file)],
        capture_output=True, text=True, timeout=60, cwd=str(REPO),
    )
    assert completed.returncode == 2
    assert f"the state file {state_file} does not hold a simulator org" in completed.stderr
    assert "move it away" in completed.stderr
    assert state_file.read_text() == content  # left as it was for the user to look at


def test_the_state_file_is_chosen_at_start_only(tmp_path: Path) -> None:
    sim = start_simulator(SimSettings(state_file=str(tmp_path / "org.json")))
    try:
        refused = requests.patch(f"{sim.base_url}/_sim/config",
                                 json={"state_file": str(tmp_path / "other.json")}, timeout=10)
        assert refused.status_code == 400
        assert "state_file is chosen at start" in refused.json()["error"]
    finally:
        sim.stop()
    saved = json.loads((tmp_path / "org.json").read_text())
    assert saved["format"] == "sfsim-org/1"
    assert not (tmp_path / "other.json").exists()
