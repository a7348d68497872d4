"""The one retrying HTTP session, against a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from urllib3 import HTTPResponse
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from shared.http_session import CappedRetry, retrying_session
from shared.salesforce.client import SalesforceClient, SalesforceCredentials, SalesforceRetry
from shared.sync.sinks import HttpSink


class FlakyServer:
    """Answers the queued statuses in turn, then 200; counts the requests."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests = 0
        self.url = ""

    def __call__(self, environ, start_response):
        self.requests += 1
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(f"answer {status}", status=status)(environ, start_response)


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(statuses: list[int]) -> FlakyServer:
        app = FlakyServer(statuses)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        app.url = f"http://127.0.0.1:{server.server_port}/"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return app

    yield start
    for server in servers:
        server.shutdown()


def test_5xx_and_429_are_retried_until_an_answer_passes(serve):
    server = serve([503, 429, 502])
    response = retrying_session(max_retries=3, backoff=0).post(server.url, data=b"x")
    assert (response.status_code, server.requests) == (200, 4)


def test_after_the_last_retry_the_final_answer_is_returned_not_raised(serve):
    server = serve([503, 503, 503])
    response = retrying_session(max_retries=2, backoff=0).get(server.url)
    assert (response.status_code, response.text, server.requests) == (503, "answer 503", 3)


def test_a_servers_retry_after_is_honoured_only_up_to_the_backoff_cap():
    retry = CappedRetry(total=1, backoff_max=2.0)
    response = HTTPResponse(status=503, headers={"Retry-After": "3600"})
    assert retry.get_retry_after(response) == 2.0


def test_the_salesforce_client_and_the_http_sink_use_the_one_factory():
    client = SalesforceClient(SalesforceCredentials("https://sf.example", "id", "secret"))
    sink = HttpSink("https://sink.example/api", None)
    client_retry = client.session.get_adapter("https://sf.example").max_retries
    sink_retry = sink.session.get_adapter("https://sink.example").max_retries
    assert type(client_retry) is SalesforceRetry
    assert type(sink_retry) is CappedRetry
    assert client_retry.status_forcelist == sink_retry.status_forcelist


def test_the_environment_is_read_once_per_origin_as_requests_reads_it(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = retrying_session(max_retries=1, backoff=0)
    urls = ["https://org.my.salesforce.com/services/data/v60.0/composite",
            "https://bypassed.example/api/assets", "http://plain.example/x"]

    def settings(of, url):
        return of.merge_environment_settings(url, {}, None, None, None)

    for url in urls:
        assert settings(session, url) == settings(requests.Session(), url)
    assert settings(session, urls[0])["proxies"]["https"] == "http://proxy.internal:3128"
    assert settings(session, urls[0])["verify"] == str(bundle)
    assert "https" not in settings(session, urls[1])["proxies"]

    # Read once: a later change of the environment is not seen by this session
    # (a Functions worker's environment does not change while it runs) ...
    monkeypatch.setenv("HTTPS_PROXY", "http://another.internal:3128")
    assert settings(session, urls[0] + "/other")["proxies"]["https"] == \
        "http://proxy.internal:3128"
    # ... but a new origin is looked up when first called, and a request's own
    # arguments still win over the environment.
    assert settings(session, "https://other.example/")["proxies"]["https"] == \
        "http://another.internal:3128"
    own = session.merge_environment_settings(
        urls[0], {"https": "http://mine:1"}, None, "/my/bundle.pem", None)
    assert (own["proxies"]["https"], own["verify"]) == ("http://mine:1", "/my/bundle.pem")
