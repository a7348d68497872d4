"""The Bicep templates parse, pass checkov, and keep the security posture the README promises.

Checkov runs from the tool venv (.venv-tools, made by `make tools`): its pinned
dependencies would downgrade packages of the app's venv.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.bicep_source import (
    INFRA,
    REPO_ROOT,
    DeclaredResource,
    bicep_files,
    declared_resources,
    property_path,
    string_value,
    syntax_problems,
    text,
    variable_value,
)

CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+)\s*:?\s*(.*)")


def _run_checkov(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHECKOV.exists(), (
        f"checkov is not installed at {CHECKOV.relative_to(REPO_ROOT)}: run `make tools`"
    )
    return subprocess.run(
        [str(CHECKOV), "--framework", "bicep", "--skip-download", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    result = _run_checkov("-d", str(INFRA.relative_to(REPO_ROOT)), "-o", "json")
    assert result.stdout.strip(), f"checkov printed nothing; stderr:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    # One framework gives one report object; several would give a list.
    assert isinstance(report, dict), f"unexpected checkov output: {result.stdout[:500]}"
    return report


@pytest.fixture(scope="module")
def checked_resource_types() -> set[str]:
    """Resource types checkov has at least one Bicep check for."""
    result = _run_checkov("--list")
    assert result.returncode == 0, result.stderr[-3000:]
    types = set()
    for row in result.stdout.splitlines():
        cells = [cell.strip() for cell in row.split("|")]
        if len(cells) > 4 and cells[3] == "resource":
            types.update(entity.strip() for entity in cells[4].split(","))
    assert "Microsoft.Web/sites" in types, "could not read checkov's list of checks"
    return types


def _results(report: dict, kind: str) -> list[dict]:
    return report.get("results", {}).get(kind, [])


def _skip_comments() -> Iterator[tuple[Path, int, str, str]]:
    for path in bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                yield path, number, match.group(1), match.group(2).strip()


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_file_parses_without_errors(path: Path) -> None:
    assert not syntax_problems(path), f"{path.name}:\n" + "\n".join(syntax_problems(path))


def test_templates_exist() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert {"main.bicep", "modules/function-app.bicep", "modules/storage.bicep",
            "modules/keyvault.bicep", "modules/monitoring.bicep"} <= names


def test_checkov_passes_with_every_file_parsed(checkov_report: dict) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in _results(checkov_report, "failed_checks")
    ]
    assert not failed, "checkov failed:\n" + "\n".join(failed)
    # A file checkov cannot parse is silently left out of the scan.
    assert summary["parsing_errors"] == 0, _results(checkov_report, "parsing_errors")
    assert summary["passed"] > 0


def test_every_skipped_check_is_justified_beside_it(checkov_report: dict) -> None:
    for skipped in _results(checkov_report, "skipped_checks"):
        reason = (skipped["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 20, f"{skipped['check_id']} on {skipped['resource']}: no reason"
    skipped_ids = {c["check_id"] for c in _results(checkov_report, "skipped_checks")}
    for path, number, check_id, reason in _skip_comments():
        where = f"{path.relative_to(REPO_ROOT)}:{number}"
        assert reason, f"{where}: skip of {check_id} without a reason"
        assert check_id in skipped_ids, f"{where}: {check_id} is skipped but checkov never ran it"


def test_checkov_scanned_every_declared_resource(
    checkov_report: dict, checked_resource_types: set[str]
) -> None:
    reported = {
        (Path(c["file_path"]).name, c["resource"])
        for kind in ("passed_checks", "skipped_checks", "failed_checks")
        for c in _results(checkov_report, kind)
    }
    passed_types = {
        c["resource"].rsplit(".", 1)[0] for c in _results(checkov_report, "passed_checks")
    }
    declared = declared_resources()
    checkable = [r for r in declared if r.type in checked_resource_types]
    assert checkable, "checkov has a check for none of the declared resource types"
    not_scanned = [
        f"{r.file.name}: {r.type}.{r.symbol}"
        for r in checkable
        if (r.file.name, f"{r.type}.{r.symbol}") not in reported
    ]
    assert not not_scanned, "checkov did not scan:\n" + "\n".join(not_scanned)
    # Types whose every applicable check is skipped (with a reason) pass no check.
    fully_skipped = {
        c["resource"].rsplit(".", 1)[0] for c in _results(checkov_report, "skipped_checks")
    } - passed_types
    uncovered = {r.type for r in checkable} - passed_types - fully_skipped
    assert not uncovered, f"no passed check covers {sorted(uncovered)}"


# -- the posture the README promises, beyond what checkov looks at ---------------------


def _resource(type_name: str, symbol: str | None = None) -> DeclaredResource:
    found = [
        r for r in declared_resources()
        if r.type == type_name and (symbol is None or r.symbol == symbol)
    ]
    assert len(found) == 1, f"expected one {type_name} {symbol or ''}, found {len(found)}"
    return found[0]


def _value(resource: DeclaredResource, *path: str) -> str:
    assert resource.body is not None
    node = property_path(resource.body, *path)
    literal = string_value(node)
    return text(node) if literal is None else literal


def test_function_app_runs_python_311_on_flex_consumption_with_its_identity() -> None:
    plan = _resource("Microsoft.Web/serverfarms")
    assert _value(plan, "sku", "name") == "FC1"
    assert _value(plan, "sku", "tier") == "FlexConsumption"
    site = _resource("Microsoft.Web/sites")
    assert _value(site, "properties", "functionAppConfig", "runtime", "name") == "python"
    assert _value(site, "properties", "functionAppConfig", "runtime", "version") == "3.11"
    storage = ("properties", "functionAppConfig", "deployment", "storage")
    assert _value(site, *storage, "type") == "blobContainer"
    assert _value(site, *storage, "authentication", "type") == "UserAssignedIdentity"
    assert _value(site, "identity", "type") == "UserAssigned"
    assert _value(site, "properties", "keyVaultReferenceIdentity") == "identityId"
    assert _value(site, "properties", "httpsOnly") == "true"
    assert _value(site, "properties", "siteConfig", "minTlsVersion") == "1.2"
    assert _value(site, "properties", "siteConfig", "ftpsState") == "Disabled"


def test_basic_auth_publishing_is_off_for_ftp_and_scm() -> None:
    policies = [
        r for r in declared_resources()
        if r.type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    ]
    assert {_value(p, "name") for p in policies} == {"ftp", "scm"}
    assert {_value(p, "properties", "allow") for p in policies} == {"false"}


def test_storage_takes_identity_access_only() -> None:
    account = _resource("Microsoft.Storage/storageAccounts")
    assert _value(account, "properties", "allowSharedKeyAccess") == "false"
    assert _value(account, "properties", "allowBlobPublicAccess") == "false"
    assert _value(account, "properties", "minimumTlsVersion") == "TLS1_2"


def test_key_vault_uses_rbac_with_soft_delete_and_purge_protection() -> None:
    vault = _resource("Microsoft.KeyVault/vaults")
    assert _value(vault, "properties", "enableRbacAuthorization") == "true"
    assert _value(vault, "properties", "enableSoftDelete") == "true"
    assert _value(vault, "properties", "enablePurgeProtection") == "true"


def test_application_insights_has_local_auth_off_on_log_analytics() -> None:
    insights = _resource("Microsoft.Insights/components")
    assert _value(insights, "properties", "DisableLocalAuth") == "true"
    assert _value(insights, "properties", "WorkspaceResourceId") == "workspace.id"


ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
}


def test_the_app_identity_gets_every_role_it_needs() -> None:
    granted: set[str] = set()
    for assignment in declared_resources():
        if assignment.type != "Microsoft.Authorization/roleAssignments":
            continue
        if _value(assignment, "properties", "principalId") != "identityPrincipalId":
            continue
        granted |= _role_ids(assignment)
    missing = {name for guid, name in ROLES.items() if guid not in granted}
    assert not missing, f"the app identity lacks: {sorted(missing)}"


def _role_ids(assignment: DeclaredResource) -> set[str]:
    """Role definition GUIDs of `subscriptionResourceId(..., <var or loop variable>)`."""
    expression = _value(assignment, "properties", "roleDefinitionId")
    argument = re.fullmatch(r"subscriptionResourceId\('[^']+',\s*(\w+)\)", expression)
    assert argument, f"{assignment.symbol}: unexpected roleDefinitionId {expression}"
    names = [argument.group(1)]
    if assignment.loop and assignment.loop[0] == names[0]:
        members = variable_value(assignment.file, assignment.loop[1])
        names = [text(member) for member in members.named_children]
    return {string_value(variable_value(assignment.file, name)) or "" for name in names}
