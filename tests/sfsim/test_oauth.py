"""Logins as clients see them: OAuth token, password grant, SOAP login and logout,
the session check, token expiry, user info, the identity URL and revoke."""

from __future__ import annotations

import time

import pytest
import requests

from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, token_answer, url


def test_token_response_has_salesforces_fields(sfsim: SimulatorHandle) -> None:
    body = token_answer(sfsim)
    assert {"access_token", "instance_url", "token_type", "issued_at", "id", "signature"} <= set(
        body
    )
    assert body["instance_url"] == sfsim.base_url
    assert body["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"},
         "invalid_client"),
    ],
)
def test_oauth_errors(sfsim: SimulatorHandle, form: dict, error: str) -> None:
    response = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_missing_or_bad_token_is_401_invalid_session(api: requests.Session) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = requests.get(url(api, f"{V}/sobjects"), headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_tokens_expire_after_their_lifetime(sfsim: SimulatorHandle, api: requests.Session) -> None:
    # Long enough for the first call to land in time on a loaded machine.
    sfsim.configure(token_ttl_seconds=2.0)
    issued = time.monotonic()
    fresh = requests.post(
        f"{sfsim.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": sfsim.client_id,
              "client_secret": sfsim.client_secret},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {fresh}"}
    assert requests.get(url(api, f"{V}/limits"), headers=headers, timeout=10).status_code == 200
    while (status := requests.get(url(api, f"{V}/limits"), headers=headers,
                                  timeout=10).status_code) == 200:
        assert time.monotonic() - issued < 15, "the token outlived its 2 s lifetime"
        time.sleep(0.1)
    assert status == 401
    assert time.monotonic() - issued >= 2.0  # not before its lifetime either


SOAP_LOGIN = (
    '<?xml version="1.0" encoding="utf-8" ?><soapenv:Envelope xmlns:soapenv='
    '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
    "<soapenv:Body><urn:login><urn:username>{user}</urn:username>"
    "<urn:password>{password}</urn:password></urn:login></soapenv:Body></soapenv:Envelope>"
)


def test_soap_login_for_username_password_clients(sfsim: SimulatorHandle) -> None:
    response = requests.post(
        f"{sfsim.base_url}/services/Soap/u/62.0",
        data=SOAP_LOGIN.format(user=sfsim.username, password="sfsim-passwordSECURITYTOKEN"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert response.status_code == 200
    session_id = response.text.split("<sessionId>")[1].split("</sessionId>")[0]
    assert f"<serverUrl>{sfsim.base_url}/services/Soap/u/62.0/" in response.text
    api = requests.get(f"{sfsim.base_url}{V}/limits",
                       headers={"Authorization": f"Bearer {session_id}"}, timeout=10)
    assert api.status_code == 200
    refused = requests.post(
        f"{sfsim.base_url}/services/Soap/u/62.0",
        data=SOAP_LOGIN.format(user=sfsim.username, password="wrong"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert refused.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in refused.text


def test_oauth_password_grant(sfsim: SimulatorHandle) -> None:
    form = {"grant_type": "password", "client_id": sfsim.client_id,
            "client_secret": sfsim.client_secret, "username": sfsim.username,
            "password": "sfsim-password"}
    token = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert token.status_code == 200 and token.json()["access_token"]
    form["password"] = "nope"
    refused = requests.post(f"{sfsim.base_url}/services/oauth2/token", data=form, timeout=10)
    assert refused.json() == {
        "error": "invalid_grant", "error_description": "authentication failure",
    }


def test_userinfo_identity_and_revoke(sfsim: SimulatorHandle, api: requests.Session) -> None:
    info = api.get(url(api, "/services/oauth2/userinfo")).json()
    assert info["preferred_username"] == sfsim.username
    identity = api.get(url(api, f"/id/{info['organization_id']}/{info['user_id']}")).json()
    assert identity["user_id"] == info["user_id"]
    token = api.headers["Authorization"].split()[1]
    assert requests.post(f"{sfsim.base_url}/services/oauth2/revoke", data={"token": token},
                         timeout=10).status_code == 200
    assert api.get(url(api, f"{V}/limits")).status_code == 401
    assert api.get(url(api, "/services/oauth2/userinfo")).status_code == 403


def test_identity_url_answers_in_salesforces_shape(sfsim: SimulatorHandle,
                                                   api: requests.Session) -> None:
    identity_url = api.get(url(api, V)).json()["identity"]
    token = api.headers["Authorization"].split()[1]
    by_header = api.get(identity_url)
    # Clients such as jsforce pass the token as a query parameter instead.
    by_parameter = requests.get(identity_url, params={"format": "json", "oauth_token": token},
                                timeout=10)
    assert by_header.status_code == by_parameter.status_code == 200
    identity = by_parameter.json()
    assert identity["id"] == identity_url
    assert identity["username"] == sfsim.username
    assert identity_url.endswith(f"/id/{identity['organization_id']}/{identity['user_id']}")
    assert identity["urls"]["rest"] == f"{sfsim.base_url}/services/data/v{{version}}/"
    refused = requests.get(identity_url, params={"oauth_token": "nope"}, timeout=10)
    assert (refused.status_code, refused.text) == (403, "Bad_OAuth_Token")


def test_soap_logout_ends_the_session_and_faults_carry_their_detail(
    sfsim: SimulatorHandle,
) -> None:
    soap_url = f"{sfsim.base_url}/services/Soap/u/62.0"
    login = requests.post(
        soap_url, data=SOAP_LOGIN.format(user=sfsim.username, password="sfsim-password"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    session_id = login.text.split("<sessionId>")[1].split("</sessionId>")[0]
    logout = (
        '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header>'
        '<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{}</sessionId>'
        '</SessionHeader></se:Header><se:Body><logout xmlns="urn:partner.soap.sforce.com"/>'
        "</se:Body></se:Envelope>"
    )
    done = requests.post(soap_url, data=logout.format(session_id), timeout=10,
                         headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert done.status_code == 200 and "<logoutResponse/>" in done.text
    api = requests.get(f"{sfsim.base_url}{V}/limits",
                       headers={"Authorization": f"Bearer {session_id}"}, timeout=10)
    assert api.status_code == 401
    again = requests.post(soap_url, data=logout.format(session_id), timeout=10,
                          headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert again.status_code == 500
    assert "<sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode>" in again.text
    refused = requests.post(
        soap_url, data=SOAP_LOGIN.format(user=sfsim.username, password="wrong"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"}, timeout=10,
    )
    assert '<sf:LoginFault xsi:type="sf:LoginFault">' in refused.text
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in refused.text
