"""The crash scenarios of the batch engine and the event queue, with their invariants.

`BatchInstance` posts contacts to the example batch job (validate, map, upsert in groups of
200, dead-letter the failed ones) and then one more instance of it, which must run: the
ordered queue moved on. `EventDrain` posts Asset events (each record's newest version,
with an older one collapsed beside it) and lets the drain apply them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.batch import batch_durable_id
from shared.batch.claims import lapsed_claims
from shared.batch.instances import active_instances, first_active, staging_rows
from shared.events.drain_state import DrainStateTable
from shared.storage.tables import safe_key
from tests.chaos.scenarios import (
    FINISH_TIMEOUT,
    TERMINAL,
    Findings,
    _Refusals,
    _tolerate_crash,
    _unique,
)
from tests.chaos.whole_app import WholeApp, wait_until
from tests.sync.sources import BASE

BATCH_JOB = "contacts"
UPSERT_PATH = "/composite/sobjects/Contact/External_Id__c"
GROUP_SIZE = 200  # the contacts job's upsert aggregator
BUSY = {"Pending", "Running"}


def _table(app: WholeApp, setting: str) -> Any:
    service = TableServiceClient.from_connection_string(app.env["AzureWebJobsStorage"])
    return service.get_table_client(app.env[setting])


# -- a batch job instance -------------------------------------------------------------


@dataclass
class BatchInstance:
    """250 contacts, every tenth without a valid email: 5 blocks of 50 (2 a generation),
    225 upserted in two groups (200 + 25), 25 dead-lettered; then a 3-record successor."""

    records: int = 250
    invalid_every: int = 10
    successor_records: int = 3
    # The point lies between a group's commit in Salesforce and its persisted outcome, so
    # that one commit is sent again after the restart (an upsert: nothing duplicated).
    commit_may_repeat: bool = False
    name: str = "batch instance"
    instance_id: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:12]}")

    @property
    def successor_id(self) -> str:
        return f"{self.instance_id}-next"

    def invalid(self, index: int) -> bool:
        return index % self.invalid_every == 0

    def body(self, instance_id: str, count: int) -> list[dict[str, str]]:
        return [{"externalId": f"{instance_id}-{index}", "firstName": "Ada",
                 "lastName": f"Contact {index}",
                 "email": "not-an-email" if instance_id == self.instance_id
                 and self.invalid(index) else f"c{index}@{instance_id}.example"}
                for index in range(count)]

    def post(self, app: WholeApp, instance_id: str, count: int) -> requests.Response | None:
        return _tolerate_crash(lambda: app.request(
            "POST", f"/api/batch-jobs/{BATCH_JOB}", params={"instanceId": instance_id},
            json=self.body(instance_id, count), timeout=60))

    def prepare(self, app: WholeApp) -> None:
        app.sfsim.clear_requests_log()

    def drive(self, app: WholeApp) -> None:
        self.post(app, self.instance_id, self.records)

    def _ended(self, app: WholeApp, instance_id: str, count: int) -> None:
        """Wait for the instance; post it again (as its client would) while it has none."""
        refusals = _Refusals()

        def ended() -> bool:
            status = app.durable_status(batch_durable_id(BATCH_JOB, instance_id))
            if status is None:
                return refusals.refused_too_long(self.post(app, instance_id, count))
            return status["runtimeStatus"] in TERMINAL

        wait_until(ended, FINISH_TIMEOUT, interval=0.3)

    def finish(self, app: WholeApp) -> None:
        self._ended(app, self.instance_id, self.records)
        # ORDERED_SEQUENTIAL: the next instance runs only once no older one is active.
        self._ended(app, self.successor_id, self.successor_records)

    def check(self, app: WholeApp) -> Findings:
        findings = Findings()
        invalid = [index for index in range(self.records) if self.invalid(index)]
        valid = self.records - len(invalid)
        loaded = [record["External_Id__c"] for record in app.sfsim.records("Contact")
                  if str(record.get("External_Id__c", "")).startswith(self.instance_id + "-")
                  and not record["External_Id__c"].startswith(self.successor_id)]
        _unique([value for value in loaded
                 if not self.invalid(int(value.rsplit("-", 1)[1]))], valid, findings)
        refused_loaded = [value for value in loaded if self.invalid(int(value.rsplit("-", 1)[1]))]
        if refused_loaded:
            findings.other.append(f"records that failed validation reached Salesforce: "
                                  f"{refused_loaded[:3]}")
        _unique([int(row["RowKey"]) for row in self._dead_letters(app)], len(invalid), findings)
        self._check_result(app, valid, len(invalid), findings)
        self._check_commits(app, valid, findings)
        rows = active_instances(_table(app, "BATCH_INSTANCES_TABLE"), BATCH_JOB)
        claims = BlobServiceClient.from_connection_string(
            app.env["AzureWebJobsStorage"]).get_container_client(app.env["BATCH_CONTAINER"])
        live, _lapsed = lapsed_claims(claims, BATCH_JOB,
                                      [row.instance_id for row in staging_rows(rows)])
        active = first_active(rows, live)
        if active is not None:
            findings.held.append(f"ordered queue blocked by instance {active.instance_id} "
                                 f"({active.status})")
        successor = app.durable_status(batch_durable_id(BATCH_JOB, self.successor_id))
        if successor is None or successor["runtimeStatus"] != "Completed":
            findings.held.append(f"the next instance did not run: "
                                 f"{successor and successor['runtimeStatus']}")
        return findings

    def _dead_letters(self, app: WholeApp) -> list[dict[str, Any]]:
        table = _table(app, "BATCH_DEAD_LETTER_TABLE")
        try:
            return list(table.query_entities("PartitionKey eq @key", parameters={
                "key": safe_key(f"{BATCH_JOB}-{self.instance_id}")}))
        except ResourceNotFoundError:  # no record ever reached the dead-letter step
            return []

    def _check_result(self, app: WholeApp, valid: int, invalid: int, findings: Findings) -> None:
        status = app.durable_status(batch_durable_id(BATCH_JOB, self.instance_id))
        if status is None or status["runtimeStatus"] != "Completed":
            findings.other.append(f"instance {self.instance_id} did not complete: "
                                  f"{status and status['runtimeStatus']}")
            return
        result = status["output"]
        counts = {name: result.get(name) for name in (
            "status", "totalRecords", "processedRecords", "successfulRecords", "failedRecords")}
        expected = {"status": "SUCCESSFUL", "totalRecords": self.records,
                    "processedRecords": self.records, "successfulRecords": valid,
                    "failedRecords": invalid}
        if counts != expected:
            findings.wrong_counts.append(f"BatchJobResult {counts}, expected {expected}")

    def _check_commits(self, app: WholeApp, valid: int, findings: Findings) -> None:
        """A group whose outcome was persisted is never committed again."""
        commits = sum(1 for request in app.sfsim.requests_log()
                      if request["method"] == "PATCH" and request["path"].endswith(UPSERT_PATH))
        groups = math.ceil(valid / GROUP_SIZE)
        expected = groups + 1  # and the successor's one group
        # A kill after a commit reached Salesforce and before its outcome was persisted may
        # repeat every commit then in flight (each once): at most this instance's groups,
        # as they run side by side; a commit whose outcome was persisted never repeats.
        allowed = expected + (groups if self.commit_may_repeat else 0)
        if not expected <= commits <= allowed:
            findings.other.append(f"{commits} upsert calls for {expected} groups: a persisted "
                                  "step ran again" if commits > allowed else
                                  f"{commits} upsert calls for {expected} groups")


# -- the event queue's drain ----------------------------------------------------------


@dataclass
class EventDrain:
    """40 Assets (10 of them changed to Retired), one event each at version 3, posted 10 a
    post with a version-1 event beside two of them (collapsed in the post): the drain takes
    10 a batch, 2 batches a generation."""

    assets: int = 40
    retired: int = 10
    per_post: int = 10
    version: int = 3
    name: str = "event drain"
    unacknowledged: list[dict[str, Any]] = field(default_factory=list)

    def status(self, asset_id: int) -> str:
        return "Retired" if asset_id <= self.retired else "Installed"

    def bodies(self) -> list[dict[str, Any]]:
        bodies = []
        for first in range(1, self.assets + 1, self.per_post):
            ids = range(first, min(first + self.per_post, self.assets + 1))
            events = [{"object": "Asset", "id": asset_id, "operation": "upsert",
                       "version": self.version} for asset_id in ids]
            events += [{"object": "Asset", "id": asset_id, "operation": "upsert", "version": 1}
                       for asset_id in list(ids)[:2]]
            bodies.append({"events": events})
        return bodies

    def prepare(self, app: WholeApp) -> None:
        app.source.insert((asset_id, BASE + timedelta(seconds=asset_id))
                          for asset_id in range(1, self.assets + 1))
        for asset_id in range(1, self.retired + 1):
            app.source.touch(asset_id, BASE + timedelta(hours=1), "Retired")

    def post_all(self, app: WholeApp, bodies: list[dict[str, Any]]) -> None:
        """Post in order until the host dies; what was not acknowledged is posted again."""
        self.unacknowledged = list(bodies)
        while self.unacknowledged:
            answer = _tolerate_crash(lambda: app.request(
                "POST", "/api/events", json=self.unacknowledged[0], timeout=60))
            if answer is None or answer.status_code >= 500:
                return
            self.unacknowledged.pop(0)

    def drive(self, app: WholeApp) -> None:
        self.post_all(app, self.bodies())

    def finish(self, app: WholeApp) -> None:
        """Post again what was not acknowledged, then wait for an empty queue and no drain;
        start a drain while events wait and none runs, as the safety timer would."""
        self.post_all(app, self.unacknowledged)

        def drained() -> bool:
            status = app.request("GET", "/api/events").json()
            running = status["drain"]["runtimeStatus"] in BUSY
            if status["queue"]["depth"] == 0 and not running:
                return True
            if not running:
                app.request("POST", "/api/events/drain")
            return False

        wait_until(drained, FINISH_TIMEOUT, interval=0.3)

    def check(self, app: WholeApp) -> Findings:
        findings = Findings()
        assets = {record["External_Id__c"]: record for record in app.sfsim.records("Asset")}
        _unique([record["External_Id__c"] for record in app.sfsim.records("Asset")],
                self.assets, findings)
        stale = [key for asset_id in range(1, self.assets + 1)
                 if (key := f"ASSET-{asset_id}") in assets
                 and assets[key].get("Status") != self.status(asset_id)]
        if stale:
            findings.other.append(f"Assets not at their newest version: {stale[:5]}")
        state = DrainStateTable(_table(app, "EVENTS_STATE_TABLE"))
        unprocessed = [asset_id for asset_id in range(1, self.assets + 1)
                       if state.processed_version("Asset", str(asset_id)) != self.version]
        if unprocessed:
            findings.lost += len(unprocessed)
        status = app.request("GET", "/api/events").json()
        if status["queue"]["depth"]:
            findings.other.append(f"{status['queue']['depth']} events left in the queue")
        drain = status["drain"]
        if drain["runtimeStatus"] in BUSY:
            findings.held.append(f"drain left {drain['runtime_status']}")
        if drain["signal"] != "idle":
            findings.held.append(f"drain signal left {drain['signal']}")
        totals = status["totals"]
        expected = {"processed": self.assets, "deadLettered": 0, "superseded": 0}
        if totals != expected:
            findings.wrong_counts.append(f"totals {totals}, expected {expected}")
        return findings
