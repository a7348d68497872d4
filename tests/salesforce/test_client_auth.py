"""Logins against the simulator: both grants, their refusals, token refresh on 401."""

from __future__ import annotations

import threading
import time
import uuid

import jwt
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sfsim.testing import SimulatorHandle, generate_jwt_key_pair
from shared.config import load_settings
from shared.salesforce import SalesforceAuthError, SalesforceClient, SalesforceCredentials
from tests.salesforce.client_setup import credentials_for, wait_for_job


def token_requests(sim: SimulatorHandle) -> int:
    return sum(1 for r in sim.requests_log() if r["path"] == "/services/oauth2/token")


def test_client_credentials_login_reaches_the_api(client: SalesforceClient,
                                                  sfsim: SimulatorHandle) -> None:
    client.upsert_records("Account", "External_Id__c", [{"External_Id__c": "A", "Name": "Acme"}])
    assert client.instance_url == sfsim.base_url
    assert [r["Name"] for r in sfsim.records("Account")] == ["Acme"]


def test_wrong_client_id_is_refused_with_salesforces_error(sfsim: SimulatorHandle) -> None:
    client = SalesforceClient(credentials_for(sfsim, client_id="nope"), backoff=0.01)
    with pytest.raises(SalesforceAuthError) as caught:
        client.login()
    assert caught.value.status == 400
    assert caught.value.error_code == "invalid_client_id"
    assert str(caught.value) == "invalid_client_id: client identifier invalid"


def test_wrong_client_secret_is_refused(sfsim: SimulatorHandle) -> None:
    client = SalesforceClient(credentials_for(sfsim, client_secret="wrong"), backoff=0.01)
    with pytest.raises(SalesforceAuthError) as caught:
        client.get_job("7504x0000000001AAA")
    assert caught.value.error_code == "invalid_client"
    assert caught.value.message == "invalid client credentials"


@pytest.fixture
def jwt_app(sfsim: SimulatorHandle) -> tuple[str, str]:
    private_pem, cert_pem = generate_jwt_key_pair()
    sfsim.configure(jwt_certificate_pem=cert_pem)
    return private_pem, cert_pem


def jwt_credentials(sim: SimulatorHandle, private_pem: str, **changes: object):
    values: dict = {
        "login_url": sim.login_url, "client_id": sim.client_id, "username": sim.username,
        "private_key_pem": private_pem, "grant": "jwt_bearer",
    }
    values.update(changes)
    return SalesforceCredentials(**values)


def test_jwt_bearer_login_reaches_the_api(sfsim: SimulatorHandle, jwt_app) -> None:
    client = SalesforceClient(jwt_credentials(sfsim, jwt_app[0]))
    job = client.create_ingest_job("Account", "insert")
    assert client.get_job(job.id).state == "Open"


def test_jwt_signed_by_another_key_is_refused(sfsim: SimulatorHandle, jwt_app) -> None:
    other_key, _ = generate_jwt_key_pair()
    client = SalesforceClient(jwt_credentials(sfsim, other_key))
    with pytest.raises(SalesforceAuthError, match="invalid_grant: invalid assertion"):
        client.login()


def test_jwt_for_an_unknown_user_is_refused(sfsim: SimulatorHandle, jwt_app) -> None:
    client = SalesforceClient(jwt_credentials(sfsim, jwt_app[0], username="who@example.com"))
    with pytest.raises(SalesforceAuthError) as caught:
        client.login()
    assert caught.value.error_code == "invalid_grant"


def test_jwt_for_another_audience_is_refused(sfsim: SimulatorHandle, jwt_app) -> None:
    client = SalesforceClient(
        jwt_credentials(sfsim, jwt_app[0], audience="https://elsewhere.example.com")
    )
    with pytest.raises(SalesforceAuthError, match="audience is invalid"):
        client.login()


def test_expired_jwt_is_refused(sfsim: SimulatorHandle, jwt_app) -> None:
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": sfsim.client_id, "sub": sfsim.username, "aud": sfsim.login_url,
         "exp": now - 600}, jwt_app[0], algorithm="RS256",
    )
    import requests

    response = requests.post(
        f"{sfsim.base_url}/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant",
                               "error_description": "expired authorization code"}


def test_expired_session_is_refreshed_once_and_the_call_repeated(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    job = client.create_ingest_job("Account", "insert")
    assert token_requests(sfsim) == 1
    sfsim.expire_tokens()
    assert client.get_job(job.id).id == job.id
    assert token_requests(sfsim) == 2
    statuses = [r["status"] for r in sfsim.requests_log() if r["path"].endswith(job.id)]
    assert statuses == [401, 200]


def test_session_still_invalid_after_refresh_raises_auth_error(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.configure(token_ttl_seconds=0)
    with pytest.raises(SalesforceAuthError) as caught:
        client.create_ingest_job("Account", "insert")
    assert caught.value.status == 401
    assert caught.value.error_code == "INVALID_SESSION_ID"
    assert caught.value.message == "Session expired or invalid"
    assert token_requests(sfsim) == 2


def test_upload_is_rewound_and_repeated_after_a_refresh(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    import io

    job = client.create_ingest_job("Account", "insert")
    sfsim.expire_tokens()
    client.upload_job_data(job.id, io.BytesIO(b"Name\nAfter refresh\n"))
    client.close_job(job.id)
    assert wait_for_job(client, job.id).number_records_processed == 1
    assert [r["Name"] for r in sfsim.records("Account")] == ["After refresh"]


def test_client_from_app_settings(sfsim: SimulatorHandle) -> None:
    settings = load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            **sfsim.app_settings(),
            "SALESFORCE_API_VERSION": "v61.0",
        }
    )
    client = SalesforceClient.from_settings(settings.salesforce)
    job = client.create_ingest_job("Contact", "insert")
    assert job.raw["apiVersion"] == 61.0
    assert client.timeout == 120.0


def test_jwt_settings_need_a_username_and_a_pem_key() -> None:
    from shared.config import SettingsError

    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "SALESFORCE_LOGIN_URL": "https://example.my.salesforce.com",
                "SALESFORCE_CLIENT_ID": "id",
                "SALESFORCE_AUTH_GRANT": "jwt_bearer",
            }
        )
    problems = "\n".join(caught.value.problems)
    assert "SALESFORCE_USERNAME is missing" in problems
    assert "SALESFORCE_PRIVATE_KEY is missing" in problems


@pytest.mark.parametrize(("text", "problem"), [
    ("sixty-two", "SALESFORCE_API_VERSION is malformed"),
    ("-----BEGIN CERTIFICATE-----", "SALESFORCE_PRIVATE_KEY is malformed"),
])
def test_malformed_salesforce_settings_are_named(text: str, problem: str) -> None:
    from shared.config import SettingsError

    name = problem.split()[0]
    with pytest.raises(SettingsError, match=problem):
        load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", name: text})


def test_api_version_is_normalised() -> None:
    settings = load_settings(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SALESFORCE_API_VERSION": "v60"}
    )
    assert settings.salesforce.api_version == "60.0"


def test_private_key_setting_accepts_escaped_newlines(jwt_app, sfsim: SimulatorHandle) -> None:
    settings = load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "SALESFORCE_LOGIN_URL": sfsim.login_url,
            "SALESFORCE_CLIENT_ID": sfsim.client_id,
            "SALESFORCE_AUTH_GRANT": "jwt_bearer",
            "SALESFORCE_USERNAME": sfsim.username,
            "SALESFORCE_PRIVATE_KEY": jwt_app[0].replace("\n", "\\n"),
        }
    )
    client = SalesforceClient.from_settings(settings)
    client.login()
    assert client.instance_url == sfsim.base_url


def test_salesforce_settings_never_show_their_secrets(jwt_app, sfsim: SimulatorHandle) -> None:
    settings = load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "SALESFORCE_LOGIN_URL": sfsim.login_url,
            "SALESFORCE_CLIENT_ID": sfsim.client_id,
            "SALESFORCE_CLIENT_SECRET": "very-secret-value",
            "SALESFORCE_PRIVATE_KEY": jwt_app[0],
        }
    )
    shown = repr(settings)
    assert "very-secret-value" not in shown and "PRIVATE KEY" not in shown
    assert "client_secret='***'" in shown
    assert "very-secret-value" not in repr(SalesforceClient.from_settings(settings).credentials)


def test_a_login_answer_that_echoes_the_request_carries_no_secret_into_the_error() -> None:
    secret = "consumer-secret-" + uuid.uuid4().hex

    def echo_request(environ, start_response):
        request = Request(environ)
        body = f"cannot parse {request.get_data(as_text=True)} ({dict(request.headers)})"
        return Response(body, status=400)(environ, start_response)

    server = make_server("127.0.0.1", 0, echo_request, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        credentials = SalesforceCredentials(
            login_url=f"http://127.0.0.1:{server.server_port}", client_id="id",
            client_secret=secret,
        )
        with pytest.raises(SalesforceAuthError) as caught:
            SalesforceClient(credentials, backoff=0.01).login()
    finally:
        server.shutdown()
    assert "cannot parse" in str(caught.value)
    assert secret not in str(caught.value) and secret not in caught.value.message
