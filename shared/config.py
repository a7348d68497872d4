"""The app's settings: one typed object, read from app settings once, at start-up.

Each capability declares a frozen dataclass section whose fields are `setting(...)`s. The
sections are composed into `AppSettings`; `load_settings()` reads every field of every
section and raises one `SettingsError` naming *all* missing or malformed settings, so a
misconfigured deployment fails at start-up with the whole list, not at first use.

`all_settings()` lists every declared setting: the README's settings table and the Bicep
settings-contract test are checked against it, so this module is the single source of truth.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

from shared.sql.dialects import dialect_for_connection_string
from shared.sql.identifiers import split_qualified_name

_MISSING = object()
KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    default: str | None
    required: bool
    secret: bool
    section: str


class SettingsError(ValueError):
    """One or more app settings are missing or malformed; `problems` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid app settings:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


def setting(
    name: str,
    *,
    description: str,
    default: Any = _MISSING,
    secret: bool = False,
    parse: Callable[[str], Any] = str,
) -> Any:
    """Declare a dataclass field read from the app setting `name`.

    Without a default the setting is required. `parse` turns the text into the field's
    value and raises ValueError with a human message when the text is malformed.
    """
    return dataclasses.field(
        # A secret's value must not reach a log line through the section's repr.
        repr=not secret,
        metadata={
            "setting": name,
            "description": description,
            "default": default,
            "secret": secret,
            "parse": parse,
        }
    )


# -- parsers: each raises ValueError with a message that says what was expected ----------


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"expected a number above 0, got {value}")
    return value


def parse_seconds(text: str) -> float:
    """Seconds as a number (`90`, `2.5`) or a .NET TimeSpan `hh:mm:ss` as in host.json."""
    stripped = text.strip()
    try:
        if ":" in stripped:
            hours, minutes, seconds = stripped.split(":")
            value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(stripped)
    except ValueError:
        raise ValueError(f"expected seconds or hh:mm:ss, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected a duration of 0 or more, got {text!r}")
    return value


def parse_http_url(text: str) -> str:
    parsed = urlparse(text.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.strip().rstrip("/")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text.strip()

    return parse


def parse_api_version(text: str) -> str:
    stripped = text.strip().removeprefix("v")
    if not re.fullmatch(r"\d{2,3}(\.0)?", stripped):
        raise ValueError(f"expected a Salesforce API version such as 62.0, got {text!r}")
    return stripped if stripped.endswith(".0") else stripped + ".0"


def parse_pem_private_key(text: str) -> str:
    pem = text.strip().replace("\\n", "\n")
    if not (pem.startswith("-----BEGIN") and "PRIVATE KEY-----" in pem):
        raise ValueError("expected a PEM private key (-----BEGIN PRIVATE KEY----- ...)")
    return pem + "\n"


# -- reading sections -------------------------------------------------------------------

Section = TypeVar("Section")


def _read_field(field: dataclasses.Field, environ: Mapping[str, str]) -> tuple[Any, str | None]:
    meta = field.metadata
    name = meta["setting"]
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if meta["default"] is _MISSING:
            return None, f"{name} is missing: {meta['description']}"
        return meta["default"], None
    if raw.startswith(KEY_VAULT_REFERENCE_PREFIX):
        # In Azure the platform resolves the reference before the app starts; seeing the
        # reference itself means the platform could not (identity or vault access).
        return None, (
            f"{name} is an unresolved Key Vault reference: check the app's "
            "keyVaultReferenceIdentity and its Key Vault Secrets User role"
        )
    try:
        return meta["parse"](raw), None
    except ValueError as error:
        return None, f"{name} is malformed: {error}"


def read_section(
    cls: type[Section], environ: Mapping[str, str]
) -> tuple[Section | None, list[str]]:
    """Read one section; returns it with no problems, or None with every problem found."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    bad: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value, problem = _read_field(field, environ)
        if problem:
            problems.append(problem)
            bad.append(field.metadata["setting"])
            if field.metadata["default"] is _MISSING:
                return None, problems
            # The default stands in for the bad value, so that the checks across settings
            # below still run and every bad setting is named at once.
            value = field.metadata["default"]
        values[field.name] = value
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if validate is not None:
        # A check that names a setting already reported would judge the stand-in value.
        problems.extend(problem for problem in validate()
                        if not any(_names(problem, name) for name in bad))
    return (None if problems else section), problems


def _names(problem: str, setting_name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(setting_name)}(?![A-Za-z0-9_])",
                     problem) is not None


# -- the sections -----------------------------------------------------------------------


@dataclass(frozen=True)
class StorageSettings:
    """Where durable state outside the task hub lives (watermarks, runs, staged CSV).

    Locally a connection string (Azurite); in Azure identity-based service URIs, exactly
    as the Functions host reads `AzureWebJobsStorage`.
    """

    connection_string: str | None = setting(
        "AzureWebJobsStorage",
        description="storage connection string (Azurite locally); empty in Azure, "
        "where the __blobServiceUri/__queueServiceUri/__tableServiceUri settings are used",
        default=None,
        secret=True,  # it carries the account key
    )
    blob_service_uri: str | None = setting(
        "AzureWebJobsStorage__blobServiceUri",
        description="blob endpoint for identity-based storage access",
        default=None,
        parse=parse_http_url,
    )
    queue_service_uri: str | None = setting(
        "AzureWebJobsStorage__queueServiceUri",
        description="queue endpoint for identity-based storage access (Durable Functions)",
        default=None,
        parse=parse_http_url,
    )
    table_service_uri: str | None = setting(
        "AzureWebJobsStorage__tableServiceUri",
        description="table endpoint for identity-based storage access",
        default=None,
        parse=parse_http_url,
    )
    credential: str | None = setting(
        "AzureWebJobsStorage__credential",
        description="`managedidentity` for identity-based storage access",
        default=None,
        parse=parse_choice("managedidentity"),
    )
    client_id: str | None = setting(
        "AzureWebJobsStorage__clientId",
        description="client id of the user-assigned managed identity used for storage",
        default=None,
    )

    def validate(self) -> list[str]:
        if self.connection_string:
            return []
        missing = [
            name
            for name, value in (
                ("AzureWebJobsStorage__blobServiceUri", self.blob_service_uri),
                ("AzureWebJobsStorage__queueServiceUri", self.queue_service_uri),
                ("AzureWebJobsStorage__tableServiceUri", self.table_service_uri),
            )
            if not value
        ]
        if missing:
            return [
                "AzureWebJobsStorage is missing and so are " + ", ".join(missing)
                + ": set a connection string, or all three service URIs for identity access"
            ]
        return []


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


def parse_ncrontab(text: str) -> str:
    """A six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {weekday})."""
    fields = text.split()
    if len(fields) != 6 or not all(re.fullmatch(r"[0-9A-Za-z*/,?-]+", part) for part in fields):
        raise ValueError(
            f"expected a six-field NCRONTAB expression such as '0 */5 * * * *', got {text!r}"
        )
    return " ".join(fields)


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected 0 or more, got {value}")
    return value


@dataclass(frozen=True)
class SyncSettings:
    """Where the scheduled change sync keeps its state, and how runs retry."""

    watermark_table: str = setting(
        "SYNC_WATERMARK_TABLE",
        description="table of each sync job's watermark, lock lease and tick counters",
        default="SyncWatermarks",
    )
    runs_table: str = setting(
        "SYNC_RUNS_TABLE",
        description="table with one row per sync run (start, end, pages, rows, outcome, error)",
        default="SyncRuns",
    )
    dead_letter_table: str = setting(
        "SYNC_DEAD_LETTER_TABLE",
        description="table of records the sink or the mapping rejected (key, code, message)",
        default="SyncDeadLetters",
    )
    page_attempts: int = setting(
        "SYNC_PAGE_ATTEMPTS",
        description="tries of a page whose sink call failed as a whole (5xx, timeout, "
        "limit) before the run fails with the watermark untouched",
        default=4,
        parse=parse_positive_int,
    )
    page_retry_delay: float = setting(
        "SYNC_PAGE_RETRY_DELAY",
        description="seconds before the first retry of a failed page, doubled each retry "
        "(capped at 5 minutes)",
        default=5.0,
        parse=parse_seconds,
    )
    pages_per_generation: int = setting(
        "SYNC_PAGES_PER_GENERATION",
        description="pages a run orchestration handles before continue_as_new, "
        "which keeps its history small",
        default=20,
        parse=parse_positive_int,
    )
    source_login_timeout: int = setting(
        "SYNC_SOURCE_LOGIN_TIMEOUT",
        description="seconds to wait for the source database to accept a connection",
        default=15,
        parse=parse_positive_int,
    )
    source_query_timeout: int = setting(
        "SYNC_SOURCE_QUERY_TIMEOUT",
        description="seconds a page query may run on the source database",
        default=120,
        parse=parse_positive_int,
    )


@dataclass(frozen=True)
class AssetChangesSyncSettings:
    """The example job `asset-changes` (seed 000): asset changes view -> Salesforce Asset."""

    enabled: bool = setting(
        "SYNC_ASSET_CHANGES_ENABLED",
        description="run the asset-changes sync job on its schedule",
        default=False,
        parse=parse_bool,
    )
    schedule: str = setting(
        "SYNC_ASSET_CHANGES_SCHEDULE",
        description="NCRONTAB schedule of the job's timer (the timer reads this setting "
        "as %SYNC_ASSET_CHANGES_SCHEDULE%, so it must be set in every deployment)",
        default="0 */2 * * * *",
        parse=parse_ncrontab,
    )
    connection: str | None = setting(
        "SYNC_ASSET_CHANGES_SOURCE_CONNECTION",
        description="ODBC connection string of the source database "
        "(a Key Vault reference in Azure)",
        default=None,
        secret=True,
    )
    dialect: str | None = setting(
        "SYNC_ASSET_CHANGES_SOURCE_DIALECT",
        description="tsql, postgresql or sqlite; empty: from the connection string's Driver",
        default=None,
        parse=parse_choice("tsql", "postgresql", "sqlite"),
    )
    view: str = setting(
        "SYNC_ASSET_CHANGES_SOURCE_VIEW",
        description="view (or table) of asset changes, `object` or `schema.object`",
        default="dbo.Usr_SW_Salesforce_Assets_Changes_V",
    )
    lag: float = setting(
        "SYNC_ASSET_CHANGES_LAG",
        description="seconds behind the database clock a run stops reading, so rows of "
        "transactions still open at the run's start are read by the next run",
        default=30.0,
        parse=parse_seconds,
    )
    initial_watermark: str = setting(
        "SYNC_ASSET_CHANGES_INITIAL_WATERMARK",
        description="ChangeTimestamp the first run starts after",
        default="1900-01-01 00:00:00.000",
    )
    page_size: int = setting(
        "SYNC_ASSET_CHANGES_PAGE_SIZE",
        description="rows per page (one activity, one sink call series, one checkpoint)",
        default=500,
        parse=parse_positive_int,
    )
    max_run_time: float = setting(
        "SYNC_ASSET_CHANGES_MAX_RUN_TIME",
        description="a run older than this is terminated by the next tick (lockAtMostFor)",
        default=1800.0,
        parse=parse_seconds,
    )
    min_interval: float = setting(
        "SYNC_ASSET_CHANGES_MIN_INTERVAL",
        description="no run starts sooner than this after the previous start (lockAtLeastFor)",
        default=30.0,
        parse=parse_seconds,
    )
    sink: str = setting(
        "SYNC_ASSET_CHANGES_SINK",
        description="salesforce (sObject Collections upsert of Asset by External_Id__c) "
        "or http (POST JSON batches to SYNC_ASSET_CHANGES_HTTP_URL)",
        default="salesforce",
        parse=parse_choice("salesforce", "http"),
    )
    http_url: str | None = setting(
        "SYNC_ASSET_CHANGES_HTTP_URL",
        description="endpoint the http sink POSTs batches to (seed 000's Process API)",
        default=None,
        parse=parse_http_url,
    )
    http_authorization: str | None = setting(
        "SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION",
        description="value of the http sink's Authorization header "
        "(a Key Vault reference in Azure)",
        default=None,
        secret=True,
    )

    def validate(self) -> list[str]:
        problems = []
        if self.enabled and not self.connection:
            problems.append(
                "SYNC_ASSET_CHANGES_SOURCE_CONNECTION is missing: SYNC_ASSET_CHANGES_ENABLED "
                "is true"
            )
        if self.enabled and self.sink == "http" and not self.http_url:
            problems.append(
                "SYNC_ASSET_CHANGES_HTTP_URL is missing: SYNC_ASSET_CHANGES_SINK is http"
            )
        if self.min_interval > self.max_run_time:
            problems.append(
                "SYNC_ASSET_CHANGES_MIN_INTERVAL exceeds SYNC_ASSET_CHANGES_MAX_RUN_TIME: "
                "a run must be allowed to end before the next may start"
            )
        try:
            split_qualified_name(self.view)
        except ValueError as error:
            problems.append(f"SYNC_ASSET_CHANGES_SOURCE_VIEW is malformed: {error}")
        if self.connection and not self.dialect:
            try:
                dialect_for_connection_string(self.connection)
            except ValueError as error:
                problems.append(f"SYNC_ASSET_CHANGES_SOURCE_DIALECT is missing: {error}")
        try:
            datetime.fromisoformat(self.initial_watermark.strip())
        except ValueError:
            problems.append(
                "SYNC_ASSET_CHANGES_INITIAL_WATERMARK is malformed: expected a timestamp "
                f"such as 1900-01-01 00:00:00.000, got {self.initial_watermark!r}"
            )
        return problems


@dataclass(frozen=True)
class BulkLoadSettings:
    """Parent-child Bulk API 2.0 loads (seed 002): polling, limits and where CSV is staged."""

    poll_interval: float = setting(
        "BULK_LOAD_POLL_INTERVAL",
        description="seconds between two checks of a level's ingest jobs (a durable timer)",
        default=10.0,
        parse=parse_seconds,
    )
    max_wait: float = setting(
        "BULK_LOAD_MAX_WAIT",
        description="seconds a level's jobs may take after they were closed; a job still "
        "running then is aborted and the level reported as stalled",
        default=600.0,
        parse=parse_seconds,
    )
    max_body_bytes: int = setting(
        "BULK_LOAD_MAX_BODY_BYTES",
        description="largest POST /api/bulk-loads body accepted (413 above)",
        default=50_000_000,
        parse=parse_positive_int,
    )
    upload_limit_bytes: int = setting(
        "BULK_LOAD_UPLOAD_LIMIT_BYTES",
        description="largest CSV uploaded to one ingest job; a level above it is split "
        "into several jobs (Salesforce accepts 150 MB base64, about 100 MB of CSV)",
        default=100_000_000,
        parse=parse_positive_int,
    )
    container: str = setting(
        "BULK_LOAD_CONTAINER",
        description="blob container of staged records and CSV, ID maps and failure reports",
        default="bulk-loads",
    )
    activity_attempts: int = setting(
        "BULK_LOAD_ACTIVITY_ATTEMPTS",
        description="tries of an activity that failed (Salesforce or storage unreachable) "
        "before the level is reported failed",
        default=3,
        parse=parse_positive_int,
    )
    activity_retry_delay: float = setting(
        "BULK_LOAD_ACTIVITY_RETRY_DELAY",
        description="seconds before the first retry of a failed activity (doubled each retry)",
        default=5.0,
        parse=parse_seconds,
    )

    def validate(self) -> list[str]:
        problems = []
        if self.poll_interval <= 0:
            problems.append("BULK_LOAD_POLL_INTERVAL must be above 0 seconds")
        if self.max_wait < self.poll_interval:
            problems.append(
                "BULK_LOAD_MAX_WAIT is shorter than BULK_LOAD_POLL_INTERVAL: a job would be "
                "aborted before it was checked twice"
            )
        if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", self.container):
            problems.append(
                "BULK_LOAD_CONTAINER is malformed: a blob container name is 3-63 lower-case "
                f"letters, digits and single hyphens, got {self.container!r}"
            )
        if self.upload_limit_bytes > 100_000_000:
            problems.append(
                "BULK_LOAD_UPLOAD_LIMIT_BYTES is above 100000000: Salesforce refuses uploads "
                "over 150 MB of base64"
            )
        return problems


@dataclass(frozen=True)
class AppSettings:
    storage: StorageSettings
    salesforce: SalesforceSettings
    sync: SyncSettings
    asset_changes_sync: AssetChangesSyncSettings
    bulk_load: BulkLoadSettings
    events: EventQueueSettings


@functools.lru_cache(maxsize=1)
def app_settings() -> AppSettings:
    """This process's settings, read from the environment and validated once.

    function_app.py calls it at start-up, so a bad setting stops the app there; every
    function after that gets the same object.
    """
    return load_settings()


def load_settings(environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read every section from app settings; raise SettingsError listing every problem."""
    environ = os.environ if environ is None else environ
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(AppSettings):
        section, section_problems = read_section(_section_type(field), environ)
        sections[field.name] = section
        problems.extend(section_problems)
    problems.extend(_problems_across_sections(sections))
    if problems:
        raise SettingsError(problems)
    return AppSettings(**sections)


def _problems_across_sections(sections: Mapping[str, Any]) -> list[str]:
    """Checks that need two sections (a section with problems of its own is None)."""
    sync, salesforce = sections.get("asset_changes_sync"), sections.get("salesforce")
    if sync is not None and salesforce is not None and sync.enabled \
            and sync.sink == "salesforce" and not salesforce.login_url:
        return ["SALESFORCE_LOGIN_URL is missing: SYNC_ASSET_CHANGES_ENABLED is true and "
                "SYNC_ASSET_CHANGES_SINK is salesforce"]
    return []


def _section_type(field: dataclasses.Field) -> type:
    section_type = field.type
    if isinstance(section_type, str):
        section_type = globals()[section_type]
    return section_type


def all_settings() -> list[SettingSpec]:
    """Every app setting the code reads, with its default and whether it is a secret."""
    specs = []
    for section_field in dataclasses.fields(AppSettings):
        for field in dataclasses.fields(_section_type(section_field)):
            meta = field.metadata
            default = None if meta["default"] is _MISSING else meta["default"]
            specs.append(
                SettingSpec(
                    name=meta["setting"],
                    description=meta["description"],
                    default=None if default is None else str(default),
                    required=meta["default"] is _MISSING,
                    secret=meta["secret"],
                    section=section_field.name,
                )
            )
    return specs


# Declared in its capability's package with the framework above, so imported last (and
# shared/events/__init__.py imports this module first, whichever is imported first).
from shared.events.settings import EventQueueSettings  # noqa: E402
