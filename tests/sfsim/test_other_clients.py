"""Clients nobody on the team wrote, unpatched, against the simulator.

simple-salesforce is covered in tests/salesforce/test_simple_salesforce.py; here jsforce 3
(Node, installed by `npm ci` from package.json) logs in with client credentials and over SOAP
(then logs out), does REST CRUD, `find`, a Collections upsert and retrieve, the identity URL,
a Bulk API 2.0 upsert with relationship columns, a job driven step by step (create, open,
upload, close, poll, results, delete) and a bulk query.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sfsim.testing import SimulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
JSFORCE_SCRIPT = Path(__file__).parent / "clients" / "jsforce_roundtrip.js"


def test_jsforce_round_trip_leaves_the_records_salesforce_would(sfsim: SimulatorHandle) -> None:
    node = shutil.which("node")
    assert node, "node is not on PATH: it comes with npm, which `make test` needs for Azurite"
    assert (REPO_ROOT / "node_modules" / "jsforce").is_dir(), "jsforce is missing: run `npm ci`"

    result = subprocess.run(
        [node, str(JSFORCE_SCRIPT), sfsim.login_url], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, f"jsforce failed:\n{result.stdout}\n{result.stderr}"
    assert "jsforce round trip: ok" in result.stdout
    accounts = {a["External_Id__c"]: a for a in sfsim.records("Account")}
    assert sorted(accounts) == ["J1", "J2"]
    assert accounts["J2"]["Phone"] == "555-0102"
    contacts = sfsim.records("Contact")
    assert [(c["External_Id__c"], c["AccountId"]) for c in contacts] == [
        ("C1", accounts["J1"]["Id"])
    ]
