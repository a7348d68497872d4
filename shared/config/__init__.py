"""The app's settings: one typed object, read from app settings once, at start-up.

Each capability declares a frozen dataclass section whose fields are `setting(...)`s
(`framework.py` holds `setting`, the parsers and `read_section`). The sections are
composed into `AppSettings`; `load_settings()` reads every field of every section and
raises one `SettingsError` naming *all* missing or malformed settings, so a misconfigured
deployment fails at start-up with the whole list, not at first use.

`all_settings()` lists every declared setting: the README's settings table and the Bicep
settings-contract test are checked against it, so this package is the single source of
truth.

To add a section: write `shared/config/<capability>.py` with one frozen dataclass of
`setting(...)` fields (and a `validate()` method for checks across its settings; a
setting named `*_TABLE` or `*_CONTAINER` parses with `parse_table_name` or
`parse_container_name`, which tests/shared/test_config.py checks), then add one field of
that type to `AppSettings` below. The README table
(`python -m devtools.settings_table --write`) and `infra/main.bicep` then follow; their
tests say what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.config.bulk_load import BulkLoadSettings
from shared.config.framework import (
    KEY_VAULT_REFERENCE_PREFIX,
    SettingsError,
    SettingSpec,
    parse_api_version,
    parse_bool,
    parse_choice,
    parse_container_name,
    parse_http_url,
    parse_ncrontab,
    parse_pem_private_key,
    parse_positive_int,
    parse_seconds,
    parse_table_name,
    read_section,
    secret_values,
    section_specs,
    setting,
)
from shared.config.salesforce import SalesforceSettings
from shared.config.storage import StorageSettings
from shared.config.sync import AssetChangesSyncSettings, SyncSettings
from shared.config.telemetry import TelemetrySettings
from shared.redaction import remember_secrets

__all__ = [
    "KEY_VAULT_REFERENCE_PREFIX",
    "AppSettings",
    "AssetChangesSyncSettings",
    "BulkLoadSettings",
    "SalesforceSettings",
    "SettingSpec",
    "SettingsError",
    "StorageSettings",
    "SyncSettings",
    "TelemetrySettings",
    "all_settings",
    "app_settings",
    "load_settings",
    "parse_api_version",
    "parse_bool",
    "parse_choice",
    "parse_container_name",
    "parse_http_url",
    "parse_ncrontab",
    "parse_pem_private_key",
    "parse_positive_int",
    "parse_seconds",
    "parse_table_name",
    "read_section",
    "setting",
]


# Sections declared beside their capability import the framework, so they come last.
from shared.batch.settings import BatchSettings
from shared.events.settings import EventQueueSettings


@dataclass(frozen=True)
class AppSettings:
    storage: StorageSettings
    salesforce: SalesforceSettings
    sync: SyncSettings
    asset_changes_sync: AssetChangesSyncSettings
    bulk_load: BulkLoadSettings
    batch: BatchSettings
    events: EventQueueSettings
    telemetry: TelemetrySettings

    def secret_values(self) -> list[str]:
        """The values of every setting declared `secret=True` that is set."""
        return [value for field in dataclasses.fields(self)
                for value in secret_values(getattr(self, field.name))]


@functools.lru_cache(maxsize=1)
def app_settings() -> AppSettings:
    """This process's settings, read from the environment and validated once.

    function_app.py calls it at start-up, so a bad setting stops the app there; every
    function after that gets the same object. Its secret values are redacted from error
    texts from then on (`shared.redaction`).
    """
    settings = load_settings()
    remember_secrets(settings.secret_values())
    return settings


def load_settings(environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read every section from app settings; raise SettingsError listing every problem."""
    environ = os.environ if environ is None else environ
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for name, section_type in _section_types().items():
        section, section_problems = read_section(section_type, environ)
        sections[name] = section
        problems.extend(section_problems)
    problems.extend(_problems_across_sections(sections))
    if problems:
        raise SettingsError(problems)
    return AppSettings(**sections)


def all_settings() -> list[SettingSpec]:
    """Every app setting the code reads, with its default and whether it is a secret."""
    return [
        spec
        for name, section_type in _section_types().items()
        for spec in section_specs(section_type, name)
    ]


def _problems_across_sections(sections: Mapping[str, Any]) -> list[str]:
    """Checks that need two sections (a section with problems of its own is None)."""
    sync, salesforce = sections.get("asset_changes_sync"), sections.get("salesforce")
    if sync is not None and salesforce is not None and sync.enabled \
            and sync.sink == "salesforce" and not salesforce.login_url:
        return ["SALESFORCE_LOGIN_URL is missing: SYNC_ASSET_CHANGES_ENABLED is true and "
                "SYNC_ASSET_CHANGES_SINK is salesforce"]
    return []


def _section_types() -> dict[str, type]:
    """AppSettings' field names and section types, in declaration order."""
    hints = typing.get_type_hints(AppSettings)
    return {field.name: hints[field.name] for field in dataclasses.fields(AppSettings)}
