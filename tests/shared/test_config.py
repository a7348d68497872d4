from __future__ import annotations

import pytest

from shared.config import SettingsError, all_settings, load_settings

AZURITE = "UseDevelopmentStorage=true"


def test_connection_string_is_enough_for_storage():
    settings = load_settings({"AzureWebJobsStorage": AZURITE})
    assert settings.storage.connection_string == AZURITE


def test_identity_based_storage_needs_all_three_service_uris():
    with pytest.raises(SettingsError) as raised:
        load_settings({"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net"})
    message = str(raised.value)
    assert "AzureWebJobsStorage__queueServiceUri" in message
    assert "AzureWebJobsStorage__tableServiceUri" in message
    assert "AzureWebJobsStorage__blobServiceUri" not in message.split("so are")[1]


def test_every_malformed_setting_is_named_at_once():
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {
                "AzureWebJobsStorage__blobServiceUri": "not-a-url",
                "AzureWebJobsStorage__credential": "password",
            }
        )
    names = " ".join(raised.value.problems)
    assert "AzureWebJobsStorage__blobServiceUri is malformed" in names
    assert "AzureWebJobsStorage__credential is malformed" in names


def test_checks_across_settings_still_run_when_a_setting_of_the_section_is_malformed():
    with pytest.raises(SettingsError) as raised:
        load_settings({
            "AzureWebJobsStorage": AZURITE,
            "SYNC_ASSET_CHANGES_ENABLED": "true",
            "SYNC_ASSET_CHANGES_PAGE_SIZE": "-5",
            "BULK_LOAD_POLL_INTERVAL": "abc",
            "BULK_LOAD_MAX_WAIT": "1",
            "BULK_LOAD_CONTAINER": "Bad_Name",
        })
    assert sorted(problem.split(" is ")[0] for problem in raised.value.problems) == [
        "BULK_LOAD_CONTAINER", "BULK_LOAD_POLL_INTERVAL",
        "SYNC_ASSET_CHANGES_PAGE_SIZE", "SYNC_ASSET_CHANGES_SOURCE_CONNECTION"]


def test_source_view_and_dialect_are_checked_at_start_up():
    with pytest.raises(SettingsError) as raised:
        load_settings({
            "AzureWebJobsStorage": AZURITE,
            "SYNC_ASSET_CHANGES_SOURCE_CONNECTION": "Driver={Some ODBC};Pwd=s3cret;",
            "SYNC_ASSET_CHANGES_SOURCE_VIEW": "Assets; DROP TABLE Assets",
        })
    problems = raised.value.problems
    assert [problem.split(" is ")[0] for problem in problems] == [
        "SYNC_ASSET_CHANGES_SOURCE_VIEW", "SYNC_ASSET_CHANGES_SOURCE_DIALECT"]
    assert "s3cret" not in str(raised.value)


def test_unresolved_key_vault_reference_is_reported_with_the_setting_name():
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {"AzureWebJobsStorage": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/s/)"}
        )
    assert raised.value.problems[0].startswith("AzureWebJobsStorage is an unresolved Key Vault")


def test_all_settings_lists_each_setting_once_with_its_section():
    specs = all_settings()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    assert {spec.section for spec in specs if spec.name.startswith("AzureWebJobsStorage")} == {
        "storage"
    }


def test_an_invalid_table_name_is_refused_at_start_up_with_the_setting_named():
    with pytest.raises(SettingsError) as raised:
        load_settings({"AzureWebJobsStorage": AZURITE, "SYNC_WATERMARK_TABLE": "W0"})
    assert [problem.split(" is ")[0] for problem in raised.value.problems] == [
        "SYNC_WATERMARK_TABLE"]
    assert "'W0'" in raised.value.problems[0]


@pytest.mark.parametrize(("name", "valid"), [
    ("abc", True), ("Sync2Runs", True), ("a" * 63, True),
    ("ab", False), ("a" * 64, False), ("2Runs", False), ("Sync_Runs", False),
    ("sync-runs", False), ("tables", False),
])
def test_table_names_follow_the_azure_rules(name, valid):
    environ = {"AzureWebJobsStorage": AZURITE, "SYNC_RUNS_TABLE": name}
    if valid:
        assert load_settings(environ).sync.runs_table == name
    else:
        with pytest.raises(SettingsError, match="SYNC_RUNS_TABLE is malformed"):
            load_settings(environ)


@pytest.mark.parametrize(("name", "valid"), [
    ("abc", True), ("bulk-loads-2", True), ("0" * 63, True),
    ("ab", False), ("a" * 64, False), ("Bulk", False), ("bulk--loads", False),
    ("-bulk", False), ("bulk-", False), ("bulk_loads", False),
])
def test_container_names_follow_the_azure_rules(name, valid):
    environ = {"AzureWebJobsStorage": AZURITE, "BULK_LOAD_CONTAINER": name}
    if valid:
        assert load_settings(environ).bulk_load.container == name
    else:
        with pytest.raises(SettingsError, match="BULK_LOAD_CONTAINER is malformed"):
            load_settings(environ)


def test_every_table_and_container_setting_is_checked_against_the_azure_rules():
    # A section added later with a *_TABLE or *_CONTAINER setting fails here until it
    # parses the name; a name neither rule admits is refused by both.
    names = [spec.name for spec in all_settings()
             if spec.name.endswith(("_TABLE", "_CONTAINER"))]
    assert len(names) >= 4
    for name in names:
        with pytest.raises(SettingsError) as raised:
            load_settings({"AzureWebJobsStorage": AZURITE, name: "x_0"})
        assert raised.value.problems[0].startswith(f"{name} is malformed"), name


@pytest.mark.parametrize(("schedule", "valid"), [
    ("*/15 * * * * *", True), ("0 */5 * * * *", True), ("0 30 9 * * Mon-Fri", True),
    ("0 0 0 1 Jan *", True), ("0 0 */2 * * 1-5", True),
    ("99 99 * * * *", False), ("0 0 25 * * *", False), ("0 0 0 * * 8", False),
    ("0 */5 * * *", False), ("0 0 0 1 1 * 2030", False), ("a b c d e f", False),
    ("0 0 0 31 2 *", False),
])
def test_sync_schedules_are_checked_as_ncrontab_with_seconds(schedule, valid):
    environ = {"AzureWebJobsStorage": AZURITE, "SYNC_ASSET_CHANGES_SCHEDULE": schedule}
    if valid:
        assert load_settings(environ).asset_changes_sync.schedule == schedule
    else:
        with pytest.raises(SettingsError) as raised:
            load_settings(environ)
        assert raised.value.problems[0].startswith("SYNC_ASSET_CHANGES_SCHEDULE is malformed")
        assert repr(schedule) in raised.value.problems[0]
