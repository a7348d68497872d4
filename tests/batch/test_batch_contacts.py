"""The example job `contacts` in the app as deployed (function_app.py), against the simulator."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests
from azure.data.tables import TableServiceClient

from devhost.testing import start_host
from tests.deployed_app import deployed_app_dir, deployed_app_env


def test_contacts_are_upserted_and_bad_ones_dead_lettered(tmp_path: Path, azurite, sfsim) -> None:
    app_dir = deployed_app_dir(tmp_path / "app", "Contacts" + uuid.uuid4().hex[:10])
    suffix = uuid.uuid4().hex[:10]
    env = {**deployed_app_env(azurite.connection_string), **sfsim.app_settings(),
           "BATCH_CONTACTS_ENABLED": "true", "BATCH_CONTAINER": "contacts-" + suffix,
           "BATCH_INSTANCES_TABLE": "BatchInstances" + suffix,
           "BATCH_DEAD_LETTER_TABLE": "BatchDeadLetters" + suffix}
    host = start_host(app_dir, env=env, log_path=tmp_path / "host.log")
    try:
        contacts = [{"externalId": f"C-{n}", "firstName": "Ada", "lastName": f"Person {n}",
                     "email": f"person{n}@example.com"} for n in range(250)]
        contacts[10]["email"] = "not-an-email"
        del contacts[20]["lastName"]
        answer = requests.post(host.url("/api/batch-jobs/contacts"), json=contacts,
                               params={"code": host.function_key, "instanceId": "demo"},
                               timeout=60)
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 120
        while True:
            result = requests.get(host.url("/api/batch-jobs/contacts/demo"),
                                  params={"code": host.function_key}, timeout=30).json()
            if result["status"] not in ("EXECUTABLE", "EXECUTING") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result["status"] == "SUCCESSFUL", result
        assert (result["successfulRecords"], result["failedRecords"]) == (248, 2)
        steps = {step["stepName"]: step for step in result["steps"]}
        assert steps["upsert"]["successfulRecords"] == 248
        assert steps["dead-letter"]["receivedRecords"] == 2
        stored = {record["External_Id__c"] for record in sfsim.records("Contact")}
        assert len(stored) == 248 and "C-10" not in stored and "C-20" not in stored
        table = TableServiceClient.from_connection_string(
            azurite.connection_string).get_table_client("BatchDeadLetters" + suffix)
        dead = sorted(entity["RowKey"] for entity in table.list_entities())
        assert dead == ["0000000010", "0000000020"]
    finally:
        host.stop()
