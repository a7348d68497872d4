"""The Salesforce CLI (`sf`, pinned in package.json, installed by `npm ci`) against the
simulator over HTTPS, unpatched: it logs in with an access token, then every everyday data
command runs and its effect is checked in the simulator's records.

The CLI runs with a home of its own (its org aliases and logs go there) and with telemetry,
update checks, auto-update and release notes switched off, so that it calls nothing but the
simulator. Every command is bounded by `CLI_TIMEOUT`.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sfsim.standard import ORG_ID, USER_ID
from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import access_token

REPO_ROOT = Path(__file__).resolve().parents[2]
SF = REPO_ROOT / "node_modules" / "@salesforce" / "cli" / "bin" / "run.js"
CLI_TIMEOUT = 120
ALIAS = "sfsim"
# What keeps the CLI offline: each of these would otherwise reach the internet at start-up
# or in a process it leaves behind (`SF_DISABLE_AUTOUPDATE` is the one the update hook
# reads; `SF_AUTOUPDATE_DISABLE` alone still lets it spawn `sf update --autoupdate`).
OFFLINE = {
    "SF_DISABLE_TELEMETRY": "true",
    "SFDX_DISABLE_TELEMETRY": "true",
    "SF_SKIP_NEW_VERSION_CHECK": "true",
    "SF_DISABLE_AUTOUPDATE": "true",
    "SF_AUTOUPDATE_DISABLE": "true",
    "SF_HIDE_RELEASE_NOTES": "true",
    "SF_HIDE_RELEASE_NOTES_FOOTER": "true",
}


@dataclass
class SalesforceCli:
    """`sf` with its own home, trusting the simulator's certificate."""

    node: str
    home: Path

    def environment(self, ca_file: Path, **extra: str) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NODE_EXTRA_CA_CERTS": str(ca_file),
            "SF_USE_GENERIC_UNIX_KEYCHAIN": "true",
            "NO_COLOR": "1",
            **OFFLINE,
            **extra,
        }

    def run(self, sim: SimulatorHandle, *args: str, **extra_env: str
            ) -> subprocess.CompletedProcess[str]:
        assert sim.ca_file is not None, "the CLI needs the simulator's --tls"
        return subprocess.run(
            [self.node, str(SF), *args], cwd=self.home, env=self.environment(sim.ca_file,
                                                                              **extra_env),
            capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
        )

    def json(self, sim: SimulatorHandle, *args: str) -> Any:
        """The `result` of a command run with `--json`; fails with what the CLI said."""
        completed = self.run(sim, *args, "--json")
        assert completed.returncode == 0, f"sf {' '.join(args)} failed:\n{completed.stdout}\n" \
                                          f"{completed.stderr}"
        return json.loads(completed.stdout)["result"]


@pytest.fixture(scope="module")
def cli(sfsim_tls_server: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[SalesforceCli]:
    """The CLI logged in to the simulator with an access token, as alias `sfsim`."""
    node = shutil.which("node")
    assert node, "node is not on PATH: it comes with npm, which `make test` needs for Azurite"
    assert SF.is_file(), "the Salesforce CLI is missing: run `npm ci`"
    tool = SalesforceCli(node, tmp_path_factory.mktemp("sf-home"))
    login = tool.run(sfsim_tls_server, "org", "login", "access-token", "--instance-url",
                     sfsim_tls_server.base_url, "--alias", ALIAS, "--no-prompt",
                     SF_ACCESS_TOKEN=access_token(sfsim_tls_server))
    assert login.returncode == 0, f"login failed:\n{login.stdout}\n{login.stderr}"
    assert f"Successfully authorized integration@sfsim.example with org ID {ORG_ID}" \
        in login.stdout
    yield tool


def test_login_reads_the_user_and_org_display_shows_the_org(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle
) -> None:
    shown = cli.json(sfsim_tls, "org", "display", "--target-org", ALIAS)

    assert shown["username"] == sfsim_tls.username
    assert shown["id"] == ORG_ID
    assert shown["connectedStatus"] == "Connected"
    assert shown["instanceUrl"].rstrip("/") == sfsim_tls.base_url
    assert shown["alias"] == ALIAS
    # Its start-up went nowhere else: no update check or auto-update left a trace.
    cache = cli.home / ".cache" / "sf"
    assert not (cache / "autoupdate").exists() and not (cache / "version").exists()


def test_data_query_prints_records_parents_and_counts(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle
) -> None:
    (acme, _) = sfsim_tls.insert_records("Account", [
        {"Name": "Acme", "Phone": "555-0101", "External_Id__c": "Q1"},
        {"Name": "Globex", "External_Id__c": "Q2"},
    ])
    sfsim_tls.insert_records("Contact", [{"LastName": "Smith", "AccountId": acme}])

    table = cli.run(sfsim_tls, "data", "query", "--target-org", ALIAS, "--query",
                    "SELECT Id, Name, Phone FROM Account ORDER BY Name")
    joined = cli.json(sfsim_tls, "data", "query", "--target-org", ALIAS, "--query",
                      "SELECT LastName, Account.Name FROM Contact")
    counted = cli.json(sfsim_tls, "data", "query", "--target-org", ALIAS, "--query",
                       "SELECT COUNT() FROM Account")

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(acme in line and "Acme" in line and "555-0101" in line for line in lines)
    assert any("Globex" in line for line in lines)
    assert "Total number of records retrieved: 2." in table.stdout
    assert [(r["LastName"], r["Account"]["Name"]) for r in joined["records"]] == [
        ("Smith", "Acme")]
    assert counted["totalSize"] == 2


def test_data_query_all_rows_uses_query_all(cli: SalesforceCli,
                                            sfsim_tls: SimulatorHandle) -> None:
    sfsim_tls.insert_records("Account", [{"Name": "Kept"}])

    result = cli.json(sfsim_tls, "data", "query", "--target-org", ALIAS, "--all-rows",
                      "--query", "SELECT Name FROM Account")

    assert [r["Name"] for r in result["records"]] == ["Kept"]
    assert any(r["path"].endswith("/queryAll") for r in sfsim_tls.requests_log())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_data_export_bulk_writes_the_query_job_results(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle, framing: str
) -> None:
    """`sf data export bulk` is this CLI's bulk query (`sf data query` lost `--bulk`)."""
    sfsim_tls.configure(download_framing=framing)
    sfsim_tls.insert_records("Account", [{"Name": f"Export {i}", "NumberOfEmployees": i}
                                         for i in range(5)])
    out = cli.home / f"export-{framing}.csv"

    result = cli.json(sfsim_tls, "data", "export", "bulk", "--target-org", ALIAS, "--query",
                      "SELECT Id, Name, NumberOfEmployees FROM Account WHERE "
                      "NumberOfEmployees >= 2", "--output-file", str(out), "--wait", "1")

    assert result["totalSize"] == 3
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    stored = {r["Id"]: r for r in sfsim_tls.records("Account")}
    assert sorted(r["Name"] for r in rows) == ["Export 2", "Export 3", "Export 4"]
    assert all(stored[r["Id"]]["Name"] == r["Name"] for r in rows)
    assert any("/jobs/query" in r["path"] for r in sfsim_tls.requests_log())


def test_record_commands_create_get_update_delete(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle
) -> None:
    created = cli.json(sfsim_tls, "data", "create", "record", "--target-org", ALIAS,
                       "--sobject", "Account", "--values", "Name=Initech Phone=555-0199")
    record_id = created["id"]
    assert created["success"] is True and record_id.startswith("001")
    assert [(a["Id"], a["Name"], a["Phone"]) for a in sfsim_tls.records("Account")] == [
        (record_id, "Initech", "555-0199")]

    got = cli.json(sfsim_tls, "data", "get", "record", "--target-org", ALIAS, "--sobject",
                   "Account", "--record-id", record_id)
    by_where = cli.json(sfsim_tls, "data", "get", "record", "--target-org", ALIAS,
                        "--sobject", "Account", "--where", "Name=Initech")
    assert (got["Id"], got["Name"], got["Phone"]) == (record_id, "Initech", "555-0199")
    assert by_where["Id"] == record_id

    updated = cli.json(sfsim_tls, "data", "update", "record", "--target-org", ALIAS,
                       "--sobject", "Account", "--record-id", record_id, "--values",
                       "Phone=555-0200 Industry=Energy")
    assert updated["success"] is True
    (stored,) = sfsim_tls.records("Account")
    assert (stored["Phone"], stored["Industry"]) == ("555-0200", "Energy")

    deleted = cli.json(sfsim_tls, "data", "delete", "record", "--target-org", ALIAS,
                       "--sobject", "Account", "--where", "Name=Initech")
    assert deleted["success"] is True
    assert sfsim_tls.records("Account") == []


def test_data_upsert_bulk_updates_and_creates_by_external_id(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle
) -> None:
    (existing,) = sfsim_tls.insert_records("Account", [{"Name": "Old", "External_Id__c": "U1"}])
    data = cli.home / "upsert.csv"
    data.write_text("External_Id__c,Name,Phone\nU1,Renamed,111\nU2,Brand New,222\nU3,,333\n",
                    encoding="utf-8")

    completed = cli.run(sfsim_tls, "data", "upsert", "bulk", "--target-org", ALIAS,
                        "--sobject", "Account", "--file", str(data), "--external-id",
                        "External_Id__c", "--wait", "1", "--json")
    failure = json.loads(completed.stdout)
    results = cli.json(sfsim_tls, "data", "bulk", "results", "--target-org", ALIAS,
                       "--job-id", failure["data"]["jobId"])

    # A job with a failed row ends the command with an error naming how many failed.
    assert completed.returncode == 1, completed.stdout
    assert failure["name"] == "FailedRecordDetailsError"
    assert "failed to process 1 records" in failure["message"]
    assert failure["data"]["state"] == "JobComplete"
    assert (results["processedRecords"], results["successfulRecords"],
            results["failedRecords"]) == (3, 2, 1)
    with (cli.home / results["failedFilePath"]).open(encoding="utf-8", newline="") as handle:
        (failed,) = list(csv.DictReader(handle))
    assert failed["External_Id__c"] == "U3"
    assert failed["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    accounts = {a["External_Id__c"]: a for a in sfsim_tls.records("Account")}
    assert sorted(accounts) == ["U1", "U2"]
    assert (accounts["U1"]["Id"], accounts["U1"]["Name"]) == (existing, "Renamed")
    assert (accounts["U2"]["Name"], accounts["U2"]["Phone"]) == ("Brand New", "222")


def test_data_import_bulk_inserts_the_csv(cli: SalesforceCli,
                                          sfsim_tls: SimulatorHandle) -> None:
    data = cli.home / "import.csv"
    data.write_text('Name,Description\nImported One,"two\nlines"\nImported Two,plain\n',
                    encoding="utf-8")

    result = cli.json(sfsim_tls, "data", "import", "bulk", "--target-org", ALIAS,
                      "--sobject", "Account", "--file", str(data), "--wait", "1")

    assert (result["processedRecords"], result["successfulRecords"],
            result["failedRecords"]) == (2, 2, 0)
    assert sorted((a["Name"], a["Description"]) for a in sfsim_tls.records("Account")) == [
        ("Imported One", "two\nlines"), ("Imported Two", "plain")]


def test_data_delete_bulk_deletes_the_listed_ids(cli: SalesforceCli,
                                                 sfsim_tls: SimulatorHandle) -> None:
    gone, kept = sfsim_tls.insert_records("Account", [{"Name": "Gone"}, {"Name": "Kept"}])
    data = cli.home / "delete.csv"
    data.write_text(f"Id\n{gone}\n", encoding="utf-8")

    result = cli.json(sfsim_tls, "data", "delete", "bulk", "--target-org", ALIAS,
                      "--sobject", "Account", "--file", str(data), "--wait", "1")

    assert result["jobInfo"]["state"] == "JobComplete"
    assert result["jobInfo"]["numberRecordsProcessed"] == 1
    assert [r["sf__Id"] for r in result["records"]["successfulResults"]] == [gone]
    assert result["records"]["failedResults"] == []
    assert [a["Id"] for a in sfsim_tls.records("Account")] == [kept]


def test_sobject_describe_lists_the_fields(cli: SalesforceCli,
                                           sfsim_tls: SimulatorHandle) -> None:
    described = cli.json(sfsim_tls, "sobject", "describe", "--target-org", ALIAS,
                         "--sobject", "Contact")
    user = cli.json(sfsim_tls, "sobject", "describe", "--target-org", ALIAS,
                    "--sobject", "User")

    fields = {f["name"]: f for f in described["fields"]}
    assert described["name"] == "Contact" and described["keyPrefix"] == "003"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["External_Id__c"]["externalId"] is True
    assert {"Username", "Email", "IsActive"} <= {f["name"] for f in user["fields"]}
    assert any(u["Id"] == USER_ID for u in sfsim_tls.records("User"))


def test_limits_api_display_shows_the_daily_api_requests(
    cli: SalesforceCli, sfsim_tls: SimulatorHandle
) -> None:
    sfsim_tls.configure(daily_api_limit=5000)

    limits = {item["name"]: item for item in cli.json(
        sfsim_tls, "limits", "api", "display", "--target-org", ALIAS)}

    assert limits["DailyApiRequests"]["max"] == 5000
    assert 0 < limits["DailyApiRequests"]["remaining"] < 5000
    assert limits["DailyBulkApiBatches"]["max"] == 15000
