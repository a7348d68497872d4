"""Start-up: settings from local.settings.json and Key Vault references."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from devhost.testing import REPO_ROOT, RunningHost
from tests.devhost.conftest import sample_app


def test_local_settings_values_fill_the_environment_but_do_not_override_it(
    start_devhost: Callable[..., RunningHost], tmp_path: Path
):
    app = tmp_path / "app"
    shutil.copytree(sample_app("local_settings"), app)
    (app / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"GREETING": "from file", "REGION": "file"}})
    )

    host = start_devhost(app, env={"REGION": "from environment"})
    response = requests.get(host.url("/api/settings"), timeout=10)

    assert response.json() == {"GREETING": "from file", "REGION": "from environment"}


def run_host_expecting_failure(app: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devhost", str(app), "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(app),
    )


def test_unresolvable_key_vault_reference_stops_the_host_naming_the_setting():
    result = run_host_expecting_failure(
        sample_app("key_vault_reference"),
        {"PAYMENT_API_KEY": "@Microsoft.KeyVault(SecretUri=https://127.0.0.1:9/secrets/payment-key)"},
    )

    assert result.returncode != 0
    assert "'PAYMENT_API_KEY'" in result.stderr
    assert "Key Vault reference not resolved" in result.stderr
    assert "Host started" not in result.stdout


def test_malformed_key_vault_reference_stops_the_host_with_the_expected_form():
    result = run_host_expecting_failure(
        sample_app("key_vault_reference"),
        {"PAYMENT_API_KEY": "@Microsoft.KeyVault(SecretName=payment-key)"},
    )

    assert result.returncode != 0
    assert "'PAYMENT_API_KEY'" in result.stderr
    assert "VaultName=...;SecretName=..." in result.stderr


def test_malformed_storage_connection_string_stops_the_host_naming_the_setting():
    result = run_host_expecting_failure(
        sample_app("durable_chaining"),
        {"AzureWebJobsStorage": "garbage;;AccountKey=c2VjcmV0LWtleS12YWx1ZQ=="},
    )

    assert result.returncode != 0
    assert "'AzureWebJobsStorage' is not a storage connection string" in result.stderr
    assert "c2VjcmV0LWtleS12YWx1ZQ" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_missing_function_app_is_reported(tmp_path: Path):
    result = run_host_expecting_failure(tmp_path, {})

    assert result.returncode != 0
    assert "no function_app.py" in result.stderr


def test_host_json_with_comments_and_trailing_text_is_read_like_the_functions_host(
    start_devhost: Callable[..., RunningHost],
):
    host = start_devhost(sample_app("lenient_host_json"))

    response = requests.get(host.url("/v1/hello"), timeout=10)

    assert response.text == "hello from a lenient host.json"
    assert "ignoring text after the first JSON value" in host.output()
