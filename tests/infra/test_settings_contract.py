"""The Bicep deploys exactly the settings the code reads: shared/config/ is the source.

Both directions, computed from `all_settings()` at test time, so a section added to the
settings object fails here until infra/main.bicep has its line (the failure message says
which lines to add).
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing

from shared.config import AppSettings, SettingSpec, all_settings
from tests.infra.bicep_source import (
    FUNCTION_APP,
    MAIN,
    REPO_ROOT,
    declared_resources,
    module_params,
    object_entries,
    parameter_names,
    property_path,
    string_value,
    text,
    variable_value,
)

# Settings the Functions host, the Durable extension or the Application Insights agent read
# (the code does not), and why the deployment needs each.
PLATFORM_ONLY_SETTINGS = {
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Application Insights has local auth off; "
    "the host and the app's log exporter (which reads it itself) authenticate their "
    "telemetry with the managed identity named here",
}

# Settings the code reads that the deployment must leave unset, and why.
NOT_DEPLOYED_SETTINGS = {
    "AzureWebJobsStorage": "a connection string needs the account's shared key, which is "
    "disabled; in Azure the AzureWebJobsStorage__* identity settings are used instead",
}

KEY_VAULT_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


def _code_settings() -> dict[str, SettingSpec]:
    specs = all_settings()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names)), "a setting is declared twice in shared/config/"
    return {spec.name: spec for spec in specs}


def _bicep_settings() -> tuple[dict, dict, dict]:
    """(non-secret settings of main.bicep, secret settings of main.bicep, platform settings)."""
    return (
        object_entries(variable_value(MAIN, "appSettingDefaults")),
        object_entries(variable_value(MAIN, "secretSettings")),
        object_entries(variable_value(FUNCTION_APP, "platformSettings")),
    )


def _field_metadata() -> dict[str, dict]:
    """Setting name -> the `setting(...)` metadata (parser and typed default)."""
    found = {}
    for section_type in typing.get_type_hints(AppSettings).values():
        for field in dataclasses.fields(section_type):
            found[field.metadata["setting"]] = field.metadata
    return found


def _suggested_line(spec: SettingSpec) -> str:
    if spec.secret:
        return f"  {spec.name}: '{spec.name.lower().replace('_', '-')}'   (var secretSettings)"
    default = "" if spec.default is None else spec.default.replace("'", "\\'")
    return f"  {spec.name}: '{default}'   (var appSettingDefaults)"


def test_every_setting_the_code_reads_is_deployed() -> None:
    defaults, secrets, platform = _bicep_settings()
    deployed = defaults.keys() | secrets.keys() | platform.keys()
    missing = [
        spec
        for name, spec in _code_settings().items()
        if name not in deployed and name not in NOT_DEPLOYED_SETTINGS
    ]
    assert not missing, "settings the code reads are missing from infra/main.bicep; add:\n" + (
        "\n".join(_suggested_line(spec) for spec in missing)
    )


def test_every_deployed_setting_is_read_by_the_code_or_the_platform() -> None:
    defaults, secrets, platform = _bicep_settings()
    code = _code_settings()
    unread = sorted(
        name
        for name in defaults.keys() | secrets.keys() | platform.keys()
        if name not in code and name not in PLATFORM_ONLY_SETTINGS
    )
    assert not unread, f"the Bicep deploys settings nothing reads: {unread}"


def test_settings_the_deployment_must_not_set_are_absent() -> None:
    defaults, secrets, platform = _bicep_settings()
    code = _code_settings()
    for name, reason in NOT_DEPLOYED_SETTINGS.items():
        assert name in code, f"{name} is no longer read by the code: drop its exception"
        assert name not in defaults.keys() | secrets.keys() | platform.keys(), (
            f"{name} must not be deployed: {reason}"
        )


def test_secret_settings_are_key_vault_references_and_nothing_else_is() -> None:
    defaults, secrets, platform = _bicep_settings()
    code = _code_settings()
    for name, spec in code.items():
        if name in NOT_DEPLOYED_SETTINGS:
            continue
        if spec.secret:
            assert name in secrets, f"{name} is secret: it belongs in var secretSettings"
            assert name not in defaults and name not in platform, (
                f"{name} is secret: a literal value in the Bicep would put it in the deployment"
            )
        else:
            assert name not in secrets, f"{name} is not secret: it belongs in appSettingDefaults"
    vault_names = [string_value(node) for node in secrets.values()]
    for name, vault_name in zip(secrets, vault_names, strict=True):
        assert vault_name and KEY_VAULT_SECRET_NAME.match(vault_name), (
            f"{name}: {vault_name!r} is not a valid Key Vault secret name"
        )
    assert len(set(vault_names)) == len(vault_names), "two settings share a vault secret"


def test_secret_references_use_the_secret_uri_form_over_every_secret_setting() -> None:
    references = variable_value(MAIN, "secretReferences")
    assert references.type == "for_statement"
    loop_source = next(c for c in references.named_children if c.type == "call_expression")
    assert text(loop_source) == "items(secretSettings)"
    value = text(object_entries(references.named_children[-1])["value"])
    assert "'@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${secret.value}/)'" in value


def test_the_function_app_gets_every_settings_object() -> None:
    """The named objects above are what the site's appSettings are built from."""
    passed = module_params(MAIN, "functionApp")
    assert text(passed["appSettings"]) == "union(appSettingDefaults, appSettingOverrides)"
    assert text(passed["secretSettings"]) == "secretReferences"
    plain = variable_value(FUNCTION_APP, "plainSettings")
    assert "items(union(appSettings, platformSettings))" in text(plain)
    site_settings = _site_app_settings_expression()
    assert site_settings == "concat(plainSettings, secretSettings)"


def _site_app_settings_expression() -> str:
    site = next(r for r in declared_resources() if r.type == "Microsoft.Web/sites")
    assert site.body is not None
    return text(property_path(site.body, "properties", "siteConfig", "appSettings"))


def test_bicep_defaults_mean_what_the_code_defaults_mean() -> None:
    defaults, _, _ = _bicep_settings()
    metadata = _field_metadata()
    code = _code_settings()
    params = parameter_names(MAIN)
    for name, node in defaults.items():
        meta = metadata.get(name)
        if meta is None:
            continue  # reported by the read-by-the-code test
        if node.type == "identifier":
            assert text(node) in params, f"{name} = {text(node)}: not a parameter of main.bicep"
            continue
        value = string_value(node)
        assert value is not None, f"{name}: expected a string literal or a parameter"
        assert not code[name].required, f"{name} is required: bind it to a parameter, not a literal"
        parsed = meta["default"] if value.strip() == "" else meta["parse"](value)
        assert parsed == meta["default"], (
            f"{name}: the Bicep's {value!r} means {parsed!r}, the code's default is "
            f"{meta['default']!r}"
        )


def test_platform_storage_settings_are_identity_based() -> None:
    _, _, platform = _bicep_settings()
    assert string_value(platform["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert text(platform["AzureWebJobsStorage__clientId"]) == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in platform
    assert "ClientId=${identityClientId};Authorization=AAD" in text(
        platform["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    )


def test_parameters_file_names_only_parameters_of_main_and_every_required_one() -> None:
    parameters = json.loads((MAIN.parent / "main.parameters.json").read_text())["parameters"]
    declared = parameter_names(MAIN)
    assert set(parameters) <= declared, f"unknown parameters: {set(parameters) - declared}"
    required = parameter_names(MAIN, required_only=True)
    assert required, "main.bicep should require at least environmentName"
    assert required <= set(parameters), f"missing required: {required - set(parameters)}"


def test_the_app_exports_its_own_log_records_and_the_host_does_not_repeat_them() -> None:
    """Microsoft's OpenTelemetry set-up for Python: the host in OpenTelemetry mode, the
    worker not piping records to the host, the distro configured by the app only."""
    _, _, platform = _bicep_settings()
    assert text(platform["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == \
        "applicationInsightsConnectionString"
    assert string_value(platform["PYTHON_ENABLE_OPENTELEMETRY"]) == "true"
    assert string_value(platform["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"]) == "false"
    host = json.loads((REPO_ROOT / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
