"""Helpers of the tests that drive the Salesforce client against the simulator."""

from __future__ import annotations

import time

from sfsim.testing import SimulatorHandle
from shared.salesforce import IngestJob, SalesforceClient, SalesforceCredentials


def credentials_for(sim: SimulatorHandle, **changes: object) -> SalesforceCredentials:
    values: dict = {
        "login_url": sim.login_url,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
    }
    values.update(changes)
    return SalesforceCredentials(**values)


def wait_for_job(client: SalesforceClient, job_id: str, timeout: float = 30.0) -> IngestJob:
    """Poll until the job is JobComplete, Failed or Aborted; return its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get_job(job_id)
        if job.is_terminal:
            return job
        time.sleep(0.02)
    raise AssertionError(f"ingest job {job_id} did not finish within {timeout}s")
