"""Retries and limits: 5xx/429 retried with backoff up to a cap, daily limit not retried."""

from __future__ import annotations

import pytest

from sfsim.testing import SimulatorHandle, free_port
from shared.salesforce import (
    SalesforceClient,
    SalesforceLimitError,
    SalesforceTransientError,
)
from tests.salesforce.client_setup import credentials_for


def job_calls(sim: SimulatorHandle) -> list[int]:
    return [r["status"] for r in sim.requests_log() if r["path"].endswith("/jobs/ingest")]


def test_5xx_is_retried_until_it_succeeds(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    client.login()
    sfsim.configure(next_failures=[503, 500])
    calls_before = client.api_calls
    job = client.create_ingest_job("Account", "insert")
    assert job.state == "Open"
    assert job_calls(sfsim) == [503, 500, 200]
    assert client.api_calls - calls_before == 3


def test_5xx_after_the_last_retry_is_a_transient_error(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    client.login()
    sfsim.configure(next_failures=[503] * 10)
    with pytest.raises(SalesforceTransientError) as caught:
        client.create_ingest_job("Account", "insert")
    assert caught.value.status == 503
    assert caught.value.error_code == "SERVER_UNAVAILABLE"
    assert len(job_calls(sfsim)) == 4  # the first try and max_retries=3 more


def test_429_is_retried_then_a_limit_error(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    client.login()
    sfsim.configure(next_failures=[429])
    assert client.create_ingest_job("Account", "insert").state == "Open"
    sfsim.configure(next_failures=[429] * 10)
    with pytest.raises(SalesforceLimitError) as caught:
        client.create_ingest_job("Account", "insert")
    assert (caught.value.status, caught.value.error_code) == (429, "REQUEST_LIMIT_EXCEEDED")


def test_daily_api_limit_is_a_limit_error_without_retries(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.configure(daily_api_limit=2)
    client.create_ingest_job("Account", "insert")
    client.create_ingest_job("Account", "insert")
    with pytest.raises(SalesforceLimitError) as caught:
        client.create_ingest_job("Account", "insert")
    assert (caught.value.status, caught.value.error_code) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert caught.value.message == "TotalRequests Limit exceeded."
    assert job_calls(sfsim) == [200, 200, 403]


def test_a_fraction_of_failures_is_absorbed_by_retries(sfsim: SimulatorHandle) -> None:
    sfsim.configure(error_rate_5xx=0.3, error_rate_429=0.3, seed=7)
    client = SalesforceClient(credentials_for(sfsim), max_retries=12, backoff=0.001)
    outcomes = client.upsert_records(
        "Account",
        "External_Id__c",
        [{"External_Id__c": f"F{i}", "Name": "x"} for i in range(2000)],
    )
    assert all(o.success for o in outcomes)
    statuses = [r["status"] for r in sfsim.requests_log()]
    assert {503, 429} <= set(statuses)
    assert client.api_calls == len(statuses)


def test_nothing_listening_is_a_transient_error() -> None:
    from shared.salesforce import SalesforceCredentials

    credentials = SalesforceCredentials(f"http://127.0.0.1:{free_port()}", "id", "secret")
    client = SalesforceClient(credentials, max_retries=2, backoff=0.001)
    with pytest.raises(SalesforceTransientError) as caught:
        client.login()
    assert caught.value.error_code == "CONNECTION_ERROR"


def test_slow_answers_beyond_the_timeout_are_transient_errors(sfsim: SimulatorHandle) -> None:
    client = SalesforceClient(credentials_for(sfsim), max_retries=1, backoff=0.001, timeout=0.2)
    client.login()
    sfsim.configure(slow_seconds=0.5)
    with pytest.raises(SalesforceTransientError) as caught:
        client.create_ingest_job("Account", "insert")
    assert caught.value.error_code in {"TIMEOUT", "CONNECTION_ERROR"}


def test_slow_answers_within_the_timeout_succeed(sfsim: SimulatorHandle) -> None:
    client = SalesforceClient(credentials_for(sfsim), timeout=5)
    sfsim.configure(slow_seconds=0.2)
    assert client.create_ingest_job("Account", "insert").state == "Open"


def test_an_upload_retried_after_5xx_sends_the_whole_file(
    client: SalesforceClient, sfsim: SimulatorHandle, tmp_path
) -> None:
    import io

    from tests.salesforce.client_setup import wait_for_job

    job = client.create_ingest_job("Account", "insert")
    data = tmp_path / "load.csv"
    data.write_bytes(b"Name\n" + b"".join(f"Retried {i}\n".encode() for i in range(1000)))
    sfsim.configure(next_failures=[503])
    with data.open("rb") as stream:
        client.upload_job_data(job.id, stream)
    client.close_job(job.id)
    assert wait_for_job(client, job.id).number_records_processed == 1000
    uploads = [r["status"] for r in sfsim.requests_log() if r["path"].endswith("/batches")]
    assert uploads == [503, 201]
    # A stream that is not a file (no length known up front) is sent chunked.
    job = client.create_ingest_job("Account", "insert")
    client.upload_job_data(job.id, io.BufferedReader(io.BytesIO(b"Name\nchunked\n")))
    client.close_job(job.id)
    assert wait_for_job(client, job.id).number_records_processed == 1


def test_an_upload_that_timed_out_is_not_sent_again(sfsim: SimulatorHandle) -> None:
    import io
    import time

    client = SalesforceClient(credentials_for(sfsim), max_retries=3, backoff=0.001, timeout=0.3)
    job = client.create_ingest_job("Account", "insert")
    sfsim.configure(slow_seconds=0.6)
    with pytest.raises(SalesforceTransientError) as caught:
        client.upload_job_data(job.id, io.BytesIO(b"Name\nslow\n"))
    assert caught.value.error_code == "TIMEOUT"

    def uploads() -> list[dict]:
        return [r for r in sfsim.requests_log() if r["path"].endswith("/batches")]

    # The simulator logs a request once it has answered it (0.6 s after it came in).
    deadline = time.monotonic() + 10
    while not uploads():
        assert time.monotonic() < deadline, "the slow upload never reached the simulator"
        time.sleep(0.05)
    time.sleep(1.0)  # room for a second upload, were one sent, to be answered too
    assert len(uploads()) == 1
    # A read of the job's state after a timeout is retried as usual.
    sfsim.configure(slow_seconds=0, next_failures=[503])
    assert client.get_job(job.id).state == "Open"


@pytest.mark.timeout(30)
def test_retry_after_is_honoured_up_to_the_backoff_cap(sfsim: SimulatorHandle) -> None:
    client = SalesforceClient(credentials_for(sfsim), max_retries=3, backoff=0.01,
                              backoff_max=0.05)
    client.login()
    sfsim.configure(next_failures=[429, 503], retry_after_seconds=3600)
    assert client.create_ingest_job("Account", "insert").state == "Open"
    assert job_calls(sfsim) == [429, 503, 200]
