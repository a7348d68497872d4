"""Settings section `salesforce`: the org the sinks and the bulk loads write to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shared.config.framework import (
    parse_api_version,
    parse_choice,
    parse_http_url,
    parse_pem_private_key,
    parse_positive_int,
    parse_seconds,
    setting,
)


@dataclass(frozen=True)
class SalesforceSettings:
    """The Salesforce org the sinks write to; optional until a Salesforce sink is used.

    Locally `make run` points SALESFORCE_LOGIN_URL at the simulator (sfsim/).
    """

    login_url: str | None = setting(
        "SALESFORCE_LOGIN_URL",
        description="the org's My Domain or login URL, e.g. https://example.my.salesforce.com; "
        "empty disables the Salesforce sinks",
        default=None,
        parse=parse_http_url,
    )
    client_id: str | None = setting(
        "SALESFORCE_CLIENT_ID",
        description="consumer key of the connected app (external client app)",
        default=None,
    )
    client_secret: str | None = setting(
        "SALESFORCE_CLIENT_SECRET",
        description="consumer secret of the connected app (client_credentials grant)",
        default=None,
        secret=True,
    )
    username: str | None = setting(
        "SALESFORCE_USERNAME",
        description="user the JWT-bearer grant logs in as (the JWT's sub)",
        default=None,
    )
    private_key: str | None = setting(
        "SALESFORCE_PRIVATE_KEY",
        description="PEM private key that signs the JWT-bearer assertion (RS256); "
        "literal \\n sequences are read as line breaks",
        default=None,
        secret=True,
        parse=parse_pem_private_key,
    )
    auth_grant: str = setting(
        "SALESFORCE_AUTH_GRANT",
        description="OAuth grant: client_credentials or jwt_bearer",
        default="client_credentials",
        parse=parse_choice("client_credentials", "jwt_bearer"),
    )
    api_version: str = setting(
        "SALESFORCE_API_VERSION",
        description="REST API version without the v, e.g. 62.0",
        default="62.0",
        parse=parse_api_version,
    )
    audience: str | None = setting(
        "SALESFORCE_AUDIENCE",
        description="the JWT's aud; defaults to SALESFORCE_LOGIN_URL "
        "(use https://login.salesforce.com or https://test.salesforce.com if the org wants it)",
        default=None,
        parse=parse_http_url,
    )
    max_retries: int = setting(
        "SALESFORCE_MAX_RETRIES",
        description="retries for connection errors, 5xx and 429 before a call fails",
        default=4,
        parse=parse_positive_int,
    )
    retry_backoff: float = setting(
        "SALESFORCE_RETRY_BACKOFF",
        description="first retry delay in seconds, doubled each retry (capped at 30 s)",
        default=0.5,
        parse=parse_seconds,
    )
    timeout: float = setting(
        "SALESFORCE_TIMEOUT",
        description="seconds to wait for Salesforce to answer one HTTP request",
        default=120.0,
        parse=parse_seconds,
    )

    def __repr__(self) -> str:
        # Settings get logged when start-up fails: never show the secret or the key.
        shown = {
            f.name: "***" if f.metadata["secret"] and getattr(self, f.name) else getattr(
                self, f.name
            )
            for f in dataclasses.fields(self)
        }
        return "SalesforceSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def validate(self) -> list[str]:
        if not self.login_url:
            return []
        problems = []
        if not self.client_id:
            problems.append("SALESFORCE_CLIENT_ID is missing: SALESFORCE_LOGIN_URL is set")
        if self.auth_grant == "client_credentials" and not self.client_secret:
            problems.append(
                "SALESFORCE_CLIENT_SECRET is missing: SALESFORCE_AUTH_GRANT is client_credentials"
            )
        if self.auth_grant == "jwt_bearer":
            for name, value in (
                ("SALESFORCE_USERNAME", self.username),
                ("SALESFORCE_PRIVATE_KEY", self.private_key),
            ):
                if not value:
                    problems.append(f"{name} is missing: SALESFORCE_AUTH_GRANT is jwt_bearer")
        return problems
