"""The HTTP sink against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared.config import load_settings
from shared.sync.asset_changes import ASSET_CHANGES, asset_change_message
from shared.sync.errors import SyncRunError
from shared.sync.job import HttpSinkSpec
from shared.sync.sinks import HttpSink, SinkRefused, SinkUnavailable
from tests.sync.drive import run_once
from tests.sync.sources import BASE, asset_job

TOKEN = "Bearer process-api-token"
ROW = {"Asset_ID": 7, "ChangeTimestamp": BASE, "Asset_Name": "Asset 7", "Serial_Number": "SN-7",
       "Status": "Installed", "Quantity": 1, "Price": 10.5, "Install_Date": None,
       "Contact_Email": None}


@dataclass
class ProcessApi:
    """A stand-in Process API: records each POST; answers from a queue of statuses."""

    url: str = ""
    received: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    reject_ids: set[int] = field(default_factory=set)

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.headers.get("Authorization") != TOKEN:
            return Response("no", status=401)(environ, start_response)
        body = json.loads(request.get_data())
        self.received.append(body)
        if self.statuses:
            return Response("busy", status=self.statuses.pop(0))(environ, start_response)
        errors = [
            {"index": index, "code": "INVALID_STATUS", "message": "unknown status"}
            for index, record in enumerate(body["records"])
            if record["assetId"] in self.reject_ids
        ]
        return Response(json.dumps({"errors": errors}), mimetype="application/json")(
            environ, start_response
        )


@pytest.fixture
def process_api() -> Iterator[ProcessApi]:
    api = ProcessApi()
    server = make_server("127.0.0.1", 0, api, threaded=True)
    api.url = f"http://127.0.0.1:{server.server_port}/api/assets"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()


def test_pages_are_posted_with_the_auth_header_and_masked_fields(
    sqlite_assets, state, process_api
):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 26))
    job = asset_job(sqlite_assets, page_size=10, map_record=asset_change_message,
                    sink=HttpSinkSpec(process_api.url, TOKEN))
    sink = HttpSink(process_api.url, TOKEN, backoff=0.01)
    run = run_once(job, state, sink)
    assert run.totals.rows == 25 and run.totals.pages == 3
    assert [len(body["records"]) for body in process_api.received] == [10, 10, 5]
    first = process_api.received[0]["records"][0]
    assert first["assetId"] == 1 and first["contactEmail"] == "**************.com"


def test_records_the_endpoint_rejects_are_dead_lettered(sqlite_assets, state, process_api):
    sqlite_assets.insert((asset_id, BASE) for asset_id in range(1, 6))
    process_api.reject_ids = {2, 4}
    job = asset_job(sqlite_assets, map_record=asset_change_message)
    run = run_once(job, state, HttpSink(process_api.url, TOKEN, backoff=0.01))
    assert run.totals.delivered == 3 and run.totals.dead_lettered == 2
    codes = {row["RecordKey"]: row["ErrorCode"] for row in state.dead_letters.rows(job.name)}
    assert codes == {"2": "INVALID_STATUS", "4": "INVALID_STATUS"}


def test_server_errors_are_retried_then_reported_as_unavailable(process_api):
    process_api.statuses = [503, 503]
    sink = HttpSink(process_api.url, TOKEN, max_retries=3, backoff=0.01)
    assert sink.deliver([{"assetId": 1}]).accepted == 1
    assert len(process_api.received) == 3

    process_api.statuses = [500] * 5
    with pytest.raises(SinkUnavailable, match="HTTP_500"):
        HttpSink(process_api.url, TOKEN, max_retries=2, backoff=0.01).deliver([{"assetId": 1}])


def test_refused_credentials_are_not_retried(process_api):
    with pytest.raises(SinkRefused, match="HTTP_401"):
        HttpSink(process_api.url, "Bearer wrong", backoff=0.01).deliver([{"assetId": 1}])
    assert process_api.received == []


def test_an_unreachable_endpoint_fails_the_page_and_keeps_the_watermark(sqlite_assets, state):
    from devtools.services import free_port

    sqlite_assets.insert([(1, BASE)])
    url = f"http://127.0.0.1:{free_port()}/api/assets"
    job = asset_job(sqlite_assets, map_record=asset_change_message)
    with pytest.raises(SyncRunError) as caught:
        run_once(job, state, HttpSink(url, TOKEN, max_retries=1, backoff=0.01))
    assert caught.value.retryable and caught.value.code == "HTTP_CONNECTION_FAILED"
    initial = job.source.initial_position
    assert state.watermarks.read(job.name, "timestamp", initial).etag is not None
    assert state.watermarks.read(job.name, "timestamp", initial).position == initial


def test_a_key_in_the_endpoint_query_string_stays_out_of_errors():
    from devtools.services import free_port

    url = f"http://127.0.0.1:{free_port()}/api/assets?code=secret-function-key"
    with pytest.raises(SinkUnavailable) as caught:
        HttpSink(url, TOKEN, max_retries=0, backoff=0.01).deliver([{"assetId": 1}])
    assert "secret-function-key" not in str(caught.value)
    assert "/api/assets" in str(caught.value)


def test_an_endpoint_echoing_the_request_headers_in_a_400_does_not_leak_the_authorization():
    secret = "opaque-sink-key-" + uuid.uuid4().hex

    def echo_headers(environ, start_response):
        headers = dict(Request(environ).headers)
        return Response(f"bad page; headers {headers}; key {secret}", status=400)(
            environ, start_response)

    server = make_server("127.0.0.1", 0, echo_headers, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = HttpSink(f"http://127.0.0.1:{server.server_port}/api", secret, backoff=0.01)
        with pytest.raises(SinkRefused) as caught:
            sink.deliver([{"assetId": 1}])
    finally:
        server.shutdown()
    assert caught.value.code == "HTTP_400" and "bad page; headers" in caught.value.message
    assert secret not in str(caught.value)


def test_the_environments_proxy_and_ca_bundle_are_read_once_when_the_sink_is_made(
    monkeypatch, tmp_path
):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    sink = HttpSink("https://process-api.example/api/assets", TOKEN)
    bypassed = HttpSink("https://bypassed.example/api/assets", TOKEN)
    monkeypatch.setenv("HTTPS_PROXY", "http://another.internal:3128")

    assert sink.session.proxies["https"] == "http://proxy.internal:3128"
    assert sink.session.verify == str(bundle)
    assert "https" not in bypassed.session.proxies
    assert not sink.session.trust_env  # the environment is not read again per page


def test_pages_in_flight_to_an_endpoint_are_compared_by_the_key_fields_of_its_messages(
    sqlite_assets,
):
    def renamed(row):  # two source keys posted as one record of the endpoint
        return {**asset_change_message(row), "assetId": row["Asset_ID"] % 10}

    keyed = asset_job(sqlite_assets, map_record=renamed,
                      sink=HttpSinkSpec("http://127.0.0.1:9/api", key_fields=("assetId",)))
    record_key = keyed.sink_key_reader()
    assert record_key is not None
    assert record_key(renamed({**ROW, "Asset_ID": 3})) == 3
    assert record_key(renamed({**ROW, "Asset_ID": 13})) == 3

    # Without key fields the endpoint is taken to name records by the source's key.
    assert asset_job(sqlite_assets, sink=HttpSinkSpec("http://127.0.0.1:9/api")
                     ).sink_key_reader() is None


def test_the_example_jobs_endpoint_names_its_records_by_asset_id():
    job = ASSET_CHANGES.build(load_settings({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SYNC_ASSET_CHANGES_SINK": "http", "SYNC_ASSET_CHANGES_HTTP_URL": "http://127.0.0.1:9/api",
    }))
    record_key = job.sink_key_reader()
    assert record_key is not None and record_key(asset_change_message(ROW)) == 7
