"""The simulator's knobs: credentials, token lifetime, job speed, limits and faults.

Read from `SFSIM_*` environment variables at start-up and changed at run time through
`PATCH /_sim/config` (tests use that to switch faults on and off).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sfsim.downloads import FRAMINGS

DEFAULT_CLIENT_ID = "sfsim-client-id"
DEFAULT_CLIENT_SECRET = "sfsim-client-secret"  # noqa: S105 - a documented local default
DEFAULT_USERNAME = "integration@sfsim.example"
DEFAULT_PASSWORD = "sfsim-password"  # noqa: S105 - a documented local default


@dataclass
class SimSettings:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    username: str = DEFAULT_USERNAME
    # Password (followed by any security token) for the SOAP and OAuth password logins.
    password: str = DEFAULT_PASSWORD
    # Certificate (PEM) of the connected app: verifies JWT-bearer assertions.
    jwt_certificate_pem: str | None = None
    # Accepted `aud` values besides the simulator's own URL.
    jwt_audiences: list[str] = field(
        default_factory=lambda: ["https://login.salesforce.com", "https://test.salesforce.com"]
    )
    token_ttl_seconds: float = 7200.0
    job_delay_seconds: float = 0.2
    # How much each of a job's waits varies, as a share of `job_delay_seconds` (seeded
    # draws): 0.3 waits 0.7-1.3 times the delay. Salesforce queues a job for as long as its
    # other work takes, never the same time twice.
    job_delay_jitter: float = 0.0
    # Time each internal batch of an ingest job takes after it is written (Salesforce works
    # through a job's 10,000-record batches over time; 0 runs them back to back).
    internal_batch_seconds: float = 0.0
    max_upload_bytes: int = 100_000_000
    daily_api_limit: int = 1_000_000
    shuffle_results: bool = True
    seed: int | None = None
    # Faults: a fraction of API calls answered 5xx / 429, slow answers, scripted statuses.
    error_rate_5xx: float = 0.0
    error_rate_429: float = 0.0
    retry_after_seconds: int | None = None
    slow_seconds: float = 0.0
    slow_rate: float = 1.0
    next_failures: list[int] = field(default_factory=list)
    # Jobs that end Failed with `job_failure_message` after `failed_job_processes_records`.
    fail_next_jobs: int = 0
    job_failure_message: str = (
        "InternalServerError : a batch failed after 10 retries; the rest of the job was not "
        "processed"
    )
    failed_job_processes_records: int = 0
    # Longest time an sObject Collections write takes: each call works for a random time
    # up to this (seeded draws), so concurrent calls end in any order, as on Salesforce.
    collection_call_seconds: float = 0.0
    # Fraction of ingest records failed with UNABLE_TO_LOCK_ROW (parent lock contention).
    record_lock_failure_rate: float = 0.0
    # Framing of result CSV downloads: "auto" (Content-Length when small, chunked when
    # large), "content-length" or "chunked"; gzip when the client accepts it.
    download_framing: str = "auto"
    download_gzip: bool = True
    # The file the org is kept in across restarts (`--state`); None keeps it in memory only.
    # Chosen at start: `PATCH /_sim/config` cannot change it.
    state_file: str | None = None

    ENV = {
        "client_id": "SFSIM_CLIENT_ID",
        "client_secret": "SFSIM_CLIENT_SECRET",
        "username": "SFSIM_USERNAME",
        "password": "SFSIM_PASSWORD",
        "token_ttl_seconds": "SFSIM_TOKEN_TTL",
        "job_delay_seconds": "SFSIM_JOB_DELAY",
        "job_delay_jitter": "SFSIM_JOB_DELAY_JITTER",
        "max_upload_bytes": "SFSIM_MAX_UPLOAD_BYTES",
        "daily_api_limit": "SFSIM_DAILY_API_LIMIT",
        "error_rate_5xx": "SFSIM_ERROR_RATE_5XX",
        "error_rate_429": "SFSIM_ERROR_RATE_429",
        "slow_seconds": "SFSIM_SLOW_SECONDS",
        "collection_call_seconds": "SFSIM_COLLECTION_CALL_SECONDS",
        "seed": "SFSIM_SEED",
        "download_framing": "SFSIM_DOWNLOAD_FRAMING",
        "download_gzip": "SFSIM_DOWNLOAD_GZIP",
        "state_file": "SFSIM_STATE",
    }
    START_ONLY = ("state_file",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimSettings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variable in cls.ENV.items():
            if environ.get(variable, "").strip():
                values[name] = environ[variable].strip()
        cert_file = environ.get("SFSIM_JWT_CERT", "").strip()
        settings = cls()
        settings.update(values)
        if cert_file:
            with open(cert_file, encoding="ascii") as handle:
                settings.jwt_certificate_pem = handle.read()
        return settings

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply changes by field name, converting text; ValueError names a bad field."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(fields)}")
            converted[name] = _convert(name, getattr(self, name), value)
        for name, value in converted.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["client_secret"] = "***"  # noqa: S105 - masked, not a password
        body["password"] = "***"  # noqa: S105 - masked, not a password
        return body


def _convert(name: str, current: Any, value: Any) -> Any:
    if value is None:
        if name in ("seed", "retry_after_seconds", "jwt_certificate_pem", "state_file"):
            return None
        raise ValueError(f"{name} cannot be null")
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if name in ("seed", "retry_after_seconds", "max_upload_bytes", "daily_api_limit",
                    "fail_next_jobs", "failed_job_processes_records"):
            number: int | float = int(value)
        elif name in ("next_failures", "jwt_audiences"):
            if not isinstance(value, list):
                raise ValueError("expected a list")
            return [int(v) for v in value] if name == "next_failures" else [str(v) for v in value]
        elif isinstance(current, float):
            number = float(value)
        elif name == "download_framing":
            if value not in FRAMINGS:
                raise ValueError(f"expected one of {', '.join(FRAMINGS)}, got {value!r}")
            return str(value)
        else:
            return str(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: {error}") from None
    if number < 0:
        raise ValueError(f"{name} must be 0 or more")
    if (name.startswith("error_rate") or name.endswith("_rate")
            or name == "job_delay_jitter") and number > 1:
        raise ValueError(f"{name} is a fraction between 0 and 1")
    return number
