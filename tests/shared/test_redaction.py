from __future__ import annotations

import json

import pytest

from shared.config import load_settings
from shared.redaction import REDACTED, redact_secrets, remember_secrets


@pytest.mark.parametrize("text", [
    '{"Authorization": "ApiKey k-1234567", "Host": "x"}',
    "{'authorization': 'ApiKey k-1234567'}",
    "headers: Authorization: ApiKey k-1234567\r\nHost: x",
    "x-api-key=k-1234567",
    "token Bearer k-1234567 refused",
    "https://acct.blob.core.windows.net/c/b?sv=2024&sig=k-1234567&se=1",
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k-1234567;",
    "Driver={ODBC};Server=s;Pwd=k-1234567;",
    "password=k-1234567&user=u",
    '{"client_secret": "k-1234567"}',
    "grant_type=client_credentials&client_secret=k-1234567",
])
def test_credential_shaped_values_are_redacted(text):
    redacted = redact_secrets(text)
    assert "k-1234567" not in redacted
    assert REDACTED in redacted


def test_a_jwt_is_redacted_wherever_it_stands():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
    assert redact_secrets(f"assertion {jwt} expired") == f"assertion {REDACTED} expired"


def test_a_secret_passed_by_the_caller_is_redacted_in_any_shape():
    secret = 'opaque/value"with quotes'
    echoed = json.dumps({"X-Custom": secret}) + " " + secret
    redacted = redact_secrets(echoed, also=[secret, None])
    assert "opaque" not in redacted
    assert redacted.count(REDACTED) == 2


def test_every_configured_secret_setting_is_remembered_by_the_settings_object():
    settings = load_settings({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION": "plain-sink-secret-1",
        "SALESFORCE_CLIENT_SECRET": "plain-sf-secret-2",
    })
    assert set(settings.secret_values()) == {
        "UseDevelopmentStorage=true", "plain-sink-secret-1", "plain-sf-secret-2"}
    remember_secrets(["plain-sink-secret-1", "plain-sf-secret-2"])
    assert redact_secrets("saw plain-sink-secret-1 and plain-sf-secret-2") == (
        f"saw {REDACTED} and {REDACTED}")


def test_ordinary_text_is_left_alone():
    text = ("sync job 'asset-changes': HTTP_400: https://h/api refused the page: "
            "field assetId is required; bearer token missing; password reset by admin")
    remember_secrets(["ab"])  # too short to search for without blanking ordinary words
    assert redact_secrets(text) == text
