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
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

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
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value, problem = _read_field(field, environ)
        if problem:
            problems.append(problem)
        values[field.name] = value
    if problems:
        return None, problems
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if validate is not None:
        problems.extend(validate())
    return (None if problems else section), problems


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
class AppSettings:
    storage: StorageSettings


def load_settings(environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read every section from app settings; raise SettingsError listing every problem."""
    environ = os.environ if environ is None else environ
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(AppSettings):
        section, section_problems = read_section(_section_type(field), environ)
        sections[field.name] = section
        problems.extend(section_problems)
    if problems:
        raise SettingsError(problems)
    return AppSettings(**sections)


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
