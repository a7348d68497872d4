"""Logins: the OAuth 2.0 token endpoint (client credentials, JWT bearer, password),
revoke, the OpenID user info, the identity URL, and the SOAP `login()` / `logout()` calls;
plus the check of a request's session that every other API family relies on."""

from __future__ import annotations

import html
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import jwt
from werkzeug.wrappers import Request, Response

from sfsim.api.shapes import json_response, oauth_error
from sfsim.standard import ORG_ID, USER_ID

if TYPE_CHECKING:
    from sfsim.app import Simulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def session_is_valid(sim: Simulator, request: Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "oauth"):
        # Identity URLs also take the token as a query parameter.
        token = request.args.get("oauth_token", "")
    expires = sim.tokens.get(token.strip())
    return expires is not None and expires >= time.time()


def token(sim: Simulator, request: Request) -> Response:
    form = request.form
    grant = form.get("grant_type", "")
    settings = sim.settings
    if grant == "client_credentials":
        client_id = form.get("client_id") or (request.authorization.username
                                              if request.authorization else None)
        secret = form.get("client_secret") or (request.authorization.password
                                               if request.authorization else None)
        if client_id != settings.client_id:
            return oauth_error("invalid_client_id", "client identifier invalid")
        if not secret or not secrets.compare_digest(secret, settings.client_secret):
            return oauth_error("invalid_client", "invalid client credentials")
    elif grant == "password":
        if form.get("client_id") != settings.client_id:
            return oauth_error("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(form.get("client_secret", ""), settings.client_secret):
            return oauth_error("invalid_client", "invalid client credentials")
        if not password_matches(sim, form.get("username", ""), form.get("password", "")):
            return oauth_error("invalid_grant", "authentication failure")
    elif grant == JWT_BEARER:
        refused = verify_assertion(sim, request, form.get("assertion", ""))
        if refused is not None:
            return refused
    elif grant:
        return oauth_error("unsupported_grant_type", "grant type not supported")
    else:
        return oauth_error("invalid_request", "grant_type is missing")
    access_token, issued = issue_token(sim)
    base = request.host_url.rstrip("/")
    return json_response(
        {
            "access_token": access_token,
            "signature": secrets.token_urlsafe(32),
            "scope": "api",
            "instance_url": base,
            "id": f"{base}/id/{ORG_ID}/{USER_ID}",
            "token_type": "Bearer",
            "issued_at": str(int(issued * 1000)),
            "api_instance_url": base,
        }
    )


def revoke(sim: Simulator, request: Request) -> Response:
    token = request.values.get("token", "")
    with sim.lock:
        known = sim.tokens.pop(token, None) is not None
    if not known:
        return oauth_error("unsupported_token_type", "this token type is not supported")
    return Response(status=200)


def userinfo(sim: Simulator, request: Request, **_: str) -> Response:
    """The OpenID Connect user info (also served at the token's `id` URL)."""
    if not session_is_valid(sim, request):
        return Response(b"Bad_OAuth_Token", status=403, content_type="text/plain")
    base = request.host_url.rstrip("/")
    user_id = USER_ID
    return json_response(
        {
            "sub": f"{base}/id/{ORG_ID}/{user_id}",
            "user_id": user_id,
            "organization_id": ORG_ID,
            "preferred_username": sim.settings.username,
            "username": sim.settings.username,
            "email": sim.settings.username,
            "name": "Integration User",
            "active": True,
            "user_type": "STANDARD",
            "urls": {
                "rest": f"{base}/services/data/v{{version}}/",
                "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                "query": f"{base}/services/data/v{{version}}/query/",
            },
        }
    )


def identity(sim: Simulator, request: Request, **_: str) -> Response:
    """The identity URL (the token's `id`): Salesforce's own shape, not OpenID's."""
    if not session_is_valid(sim, request):
        return Response(b"Bad_OAuth_Token", status=403, content_type="text/plain")
    base = request.host_url.rstrip("/")
    username = sim.settings.username
    soap = f"{base}/services/Soap"
    return json_response(
        {
            "id": f"{base}/id/{ORG_ID}/{USER_ID}",
            "asserted_user": True,
            "user_id": USER_ID,
            "organization_id": ORG_ID,
            "username": username,
            "nick_name": username.split("@")[0],
            "display_name": "Integration User",
            "email": username,
            "email_verified": True,
            "first_name": "Integration",
            "last_name": "User",
            "timezone": "GMT",
            "status": {"created_date": None, "body": None},
            "urls": {
                "enterprise": f"{soap}/c/{{version}}/{ORG_ID[:15]}",
                "metadata": f"{soap}/m/{{version}}/{ORG_ID[:15]}",
                "partner": f"{soap}/u/{{version}}/{ORG_ID[:15]}",
                "rest": f"{base}/services/data/v{{version}}/",
                "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                "search": f"{base}/services/data/v{{version}}/search/",
                "query": f"{base}/services/data/v{{version}}/query/",
                "recent": f"{base}/services/data/v{{version}}/recent/",
                "profile": f"{base}/{USER_ID}",
            },
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "last_modified_date": "2024-01-01T00:00:00Z",
            "is_app_installed": True,
        }
    )


def issue_token(sim: Simulator) -> tuple[str, float]:
    access_token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
    issued = time.time()
    with sim.lock:
        sim.tokens[access_token] = issued + sim.settings.token_ttl_seconds
    return access_token, issued


def password_matches(sim: Simulator, username: str, password: str) -> bool:
    # Salesforce takes the password followed by the user's security token, if any.
    return username == sim.settings.username and password.startswith(
        sim.settings.password
    )


def soap_login(sim: Simulator, request: Request, version: str) -> Response:
    """The SOAP `login()` and `logout()` calls that username-password clients
    (jsforce, simple-salesforce) still use."""
    text = request.get_data(as_text=True)

    def element(name: str) -> str:
        found = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
        return html.unescape(found.group(1)) if found else ""

    if re.search(r"<(?:\w+:)?logout\b", text):
        with sim.lock:
            known = sim.tokens.pop(element("sessionId"), None) is not None
        if not known:
            return _soap_fault("INVALID_SESSION_ID", "Invalid Session ID found in "
                               "SessionHeader: Illegal Session", "UnexpectedErrorFault")
        return Response(
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
            "<soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>",
            status=200, content_type="text/xml; charset=utf-8",
        )
    if not password_matches(sim, element("username"), element("password")):
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; "
                           "or user locked out.", "LoginFault")
    access_token, _ = issue_token(sim)
    base = request.host_url.rstrip("/")
    user_id = USER_ID
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        "<loginResponse><result>"
        f"<metadataServerUrl>{base}/services/Soap/m/{version}/{ORG_ID[:15]}"
        "</metadataServerUrl><passwordExpired>false</passwordExpired>"
        f"<sandbox>false</sandbox><serverUrl>{base}/services/Soap/u/{version}/"
        f"{ORG_ID[:15]}</serverUrl><sessionId>{html.escape(access_token)}</sessionId>"
        f"<userId>{user_id}</userId><userInfo><organizationId>{ORG_ID}</organizationId>"
        f"<organizationName>sfsim</organizationName><userId>{user_id}</userId>"
        f"<userName>{html.escape(sim.settings.username)}</userName>"
        f"<sessionSecondsValid>{int(sim.settings.token_ttl_seconds)}"
        "</sessionSecondsValid></userInfo></result></loginResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    )
    return Response(body, status=200, content_type="text/xml; charset=utf-8")


def verify_assertion(sim: Simulator, request: Request, assertion: str) -> Response | None:
    settings = sim.settings
    if not assertion:
        return oauth_error("invalid_request", "assertion is missing")
    if not settings.jwt_certificate_pem:
        return oauth_error(
            "invalid_client",
            "no certificate is configured for JWT bearer: set SFSIM_JWT_CERT",
        )
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return oauth_error("invalid_grant", "invalid assertion")
    if unverified.get("iss") != settings.client_id:
        return oauth_error("invalid_client_id", "client identifier invalid")
    audiences = [request.host_url.rstrip("/"), *settings.jwt_audiences]
    try:
        claims = jwt.decode(
            assertion, _public_key(settings.jwt_certificate_pem), algorithms=["RS256"],
            audience=audiences, options={"require": ["exp", "aud", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        return oauth_error("invalid_grant", "expired authorization code")
    except jwt.InvalidAudienceError:
        return oauth_error("invalid_grant", "audience is invalid")
    except jwt.InvalidSignatureError:
        return oauth_error("invalid_grant", "invalid assertion")
    except jwt.PyJWTError as error:
        return oauth_error("invalid_grant", f"invalid assertion: {error}")
    if claims.get("sub") != settings.username:
        return oauth_error("invalid_grant", "user hasn't approved this consumer")
    return None


def _soap_fault(code: str, message: str, fault_type: str) -> Response:
    """A SOAP fault as Salesforce sends it: faultcode, faultstring and the typed detail
    (`sf:exceptionCode`, `sf:exceptionMessage`) that clients read."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {html.escape(message)}"
        f'</faultstring><detail><sf:{fault_type} xsi:type="sf:{fault_type}">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>"
        f"{html.escape(message)}</sf:exceptionMessage></sf:{fault_type}></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, status=500, content_type="text/xml; charset=utf-8")


_KEYS: dict[str, Any] = {}


def _public_key(certificate_pem: str) -> Any:
    """The public key of a PEM certificate (or a PEM public key), cached."""
    key = _KEYS.get(certificate_pem)
    if key is None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        data = certificate_pem.encode()
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
        _KEYS[certificate_pem] = key
    return key
