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
