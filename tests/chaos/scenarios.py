"""The work a crash trial interrupts, and the invariants that must hold once it finished.

A scenario seeds what it needs (`prepare`), starts the work through the app's HTTP API
(`drive`: the host may die under it), brings the work to its end on the restarted host
the way a client or the next timer tick would (`finish`), and says what it found
(`check`): records lost or duplicated in Salesforce, locks left held, counts that are not
exact. A new capability adds a scenario here and its rows in points.py.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import requests
from azure.storage.blob import BlobServiceClient

from shared.bulkload.claims import read_load_claim
from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.storage.leased_claim import CLAIM_LEASE_SECONDS
from tests.chaos.whole_app import JOB, WholeApp, wait_until
from tests.sync.sources import BASE

TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
FINISH_TIMEOUT = 45.0
# A start refused this long with nothing running will not be accepted: stop waiting. Longer
# than a load claim's lease (CLAIM_LEASE_SECONDS), which outlives a request that died
# holding it by at most that long.
REFUSED_FOR = CLAIM_LEASE_SECONDS + 5.0


@dataclass
class Findings:
    """What a trial found once the work finished: all zero and empty means it held."""

    lost: int = 0
    duplicated: int = 0
    held: list[str] = field(default_factory=list)  # a lock, claim or job left held, each
    wrong_counts: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def locks_held(self) -> int:
        return len(self.held)

    def lost_or_duplicated(self) -> list[str]:
        found = [f"{self.lost} record(s) lost"] if self.lost else []
        found += [f"{self.duplicated} record(s) duplicated"] if self.duplicated else []
        return found + self.other

    def held_or_miscounted(self) -> list[str]:
        return ([f"left held: {text}" for text in self.held]
                + [f"count not exact: {text}" for text in self.wrong_counts])

    def violations(self) -> list[str]:
        return self.lost_or_duplicated() + self.held_or_miscounted()


class Scenario(Protocol):
    name: str

    def prepare(self, app: WholeApp) -> None: ...
    def drive(self, app: WholeApp) -> None: ...
    def finish(self, app: WholeApp) -> None: ...
    def check(self, app: WholeApp) -> Findings: ...


def _tolerate_crash(call: Any) -> requests.Response | None:
    """A request the host may die under: None when it did."""
    try:
        return call()
    except requests.ConnectionError:
        return None


@dataclass
class _Refusals:
    """How long the starts tried since the restart have been refused in a row."""

    since: float | None = None

    def refused_too_long(self, answer: requests.Response | None) -> bool:
        if answer is None or answer.status_code < 400:
            self.since = None
            return False
        self.since = self.since or time.monotonic()
        return time.monotonic() - self.since > REFUSED_FOR


def _unique(values: list[str], expected: int, findings: Findings) -> None:
    counts = Counter(values)
    findings.lost += expected - len(counts)
    findings.duplicated += sum(count - 1 for count in counts.values())


# -- the scheduled sync ---------------------------------------------------------------


@dataclass
class SyncRun:
    """45 changed rows, pages of 10 (5 pages), 3 pages per generation (continue as new)."""

    rows: int = 45
    page_size: int = 10
    name: str = "sync run"
    runs: int | None = None  # how many runs must be recorded (None: as many as it takes)

    def prepare(self, app: WholeApp) -> None:
        app.source.insert((asset_id, BASE + timedelta(seconds=asset_id))
                          for asset_id in range(1, self.rows + 1))

    def drive(self, app: WholeApp) -> None:
        _tolerate_crash(lambda: app.request("POST", f"/api/sync/{JOB}/run"))

    def finish(self, app: WholeApp) -> None:
        """Wait for the run; tick again (as the timer would) while the rows are not all in."""
        wanted = [self.rows]
        refusals = _Refusals()

        def finished() -> bool:
            status = app.sync_status()
            if status["lock"]["state"] == "running":
                return False
            if status["watermark"]["key"] == wanted and \
                    status["lock"]["runtimeStatus"] in TERMINAL:
                return True
            return refusals.refused_too_long(app.request("POST", f"/api/sync/{JOB}/run"))

        wait_until(finished, FINISH_TIMEOUT, interval=0.3)

    def check(self, app: WholeApp) -> Findings:
        findings = Findings()
        delivered = [record["External_Id__c"] for record in app.sfsim.records("Asset")]
        _unique(delivered, self.rows, findings)
        status = app.sync_status()
        if status["lock"]["state"] != "free":
            findings.held.append(f"lock {status['lock']['state']}: {status['lock']['detail']}")
        if status["watermark"]["key"] != [self.rows]:
            findings.other.append(f"watermark at {status['watermark']['key']}, not {self.rows}")
        runs = status["lastRuns"]
        still_running = [run["runId"] for run in runs if run.get("outcome") == "running"]
        if still_running:
            findings.other.append(f"runs still recorded as running: {still_running}")
        if self.runs is not None and len(runs) != self.runs:
            findings.wrong_counts.append(
                f"{len(runs)} runs recorded, not {self.runs}: "
                f"{[(run.get('runId'), run.get('outcome')) for run in runs]}")
        rows = sum(int(run.get("rows") or 0) for run in runs)
        pages = sum(int(run.get("pages") or 0) for run in runs)
        expected_pages = self.expected_pages()
        if (rows, pages) != (self.rows, expected_pages):
            recorded = [(run.get("outcome"), run.get("rows"), run.get("pages")) for run in runs]
            findings.wrong_counts.append(
                f"runs recorded {rows} rows in {pages} pages for {self.rows} rows in "
                f"{expected_pages} pages: {recorded}")
        return findings

    def expected_pages(self) -> int:
        return -(-self.rows // self.page_size)


@dataclass
class PartitionedSyncRun(SyncRun):
    """The 45 rows in 2 key partitions synced side by side (even and odd Asset_IDs: 22 and
    23 rows, 3 pages each), the watermark moved once both are done."""

    partitions: int = 2
    name: str = "partitioned sync run"

    def prepare(self, app: WholeApp) -> None:
        app.env["SYNC_ASSET_CHANGES_PARTITIONS"] = str(self.partitions)
        super().prepare(app)

    def expected_pages(self) -> int:
        sizes = Counter(asset_id % self.partitions for asset_id in range(1, self.rows + 1))
        return sum(-(-size // self.page_size) for size in sizes.values())


@dataclass
class BacklogRun(SyncRun):
    """120 changed rows past a backlog threshold of 50: the run loads them with Bulk API
    2.0 upsert jobs, one per part of 40 rows (3 parts, which the run counts as pages)."""

    rows: int = 120
    page_size: int = 40  # rows per part (SYNC_BACKLOG_PART_ROWS)
    threshold: int = 50
    name: str = "backlog run"

    def prepare(self, app: WholeApp) -> None:
        app.env.update({
            "SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD": str(self.threshold),
            "SYNC_BACKLOG_PART_ROWS": str(self.page_size),
            "SYNC_BACKLOG_POLL_INTERVAL": "0.2",
            "SYNC_BACKLOG_CONTAINER": f"chaos-backlog-{uuid.uuid4().hex[:12]}",
        })
        super().prepare(app)

    def check(self, app: WholeApp) -> Findings:
        """SyncRun's invariants, and: every run loaded in bulk, each row delivered once in
        the runs' counts, no ingest job left open (a part submitted again after the crash
        is a second job; the first try's jobs still end)."""
        findings = super().check(app)
        runs = app.sync_status()["lastRuns"]
        modes = sorted({str(run.get("mode")) for run in runs})
        if modes != ["bulk"]:
            findings.other.append(f"runs loaded in modes {modes}, not only bulk")
        delivered = sum(int(run.get("delivered") or 0) for run in runs)
        if delivered != self.rows:
            findings.wrong_counts.append(
                f"runs recorded {delivered} rows delivered for {self.rows}")
        findings.held += [f"ingest job {job} left open in Salesforce"
                          for job in _ingest_jobs_left_open(app)]
        return findings


# -- the parent-child bulk load -------------------------------------------------------


@dataclass
class BulkLoad:
    """12 accounts with 2 contacts each: two levels, the children linked by Salesforce id."""

    accounts: int = 12
    contacts_per_account: int = 2
    name: str = "bulk load"
    load_id: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:12]}")

    def body(self) -> dict[str, Any]:
        return {"loadId": self.load_id, "accounts": [
            {"name": f"Account {index}", "industry": "Energy", "billingCity": "Springfield",
             "sourceId": f"{self.load_id}-A{index}",
             "contacts": [{"firstName": "Ada", "lastName": f"Contact {index}.{child}",
                           "email": f"c{index}.{child}@{self.load_id}.example"}
                          for child in range(self.contacts_per_account)]}
            for index in range(self.accounts)]}

    def prepare(self, app: WholeApp) -> None:
        return None

    def post(self, app: WholeApp) -> requests.Response | None:
        return _tolerate_crash(lambda: app.request("POST", "/api/bulk-loads", json=self.body(),
                                                   timeout=60))

    def drive(self, app: WholeApp) -> None:
        self.post(app)

    def finish(self, app: WholeApp) -> None:
        """Wait for the load; post it again (as its client would) while it has no instance."""
        refusals = _Refusals()

        def finished() -> bool:
            status = app.durable_status(self.load_id)
            if status is None:
                return refusals.refused_too_long(self.post(app))
            return status["runtimeStatus"] in TERMINAL

        wait_until(finished, FINISH_TIMEOUT, interval=0.3)

    def check(self, app: WholeApp) -> Findings:
        findings = Findings()
        accounts = [record for record in app.sfsim.records("Account")
                    if str(record.get("External_Id__c", "")).startswith(self.load_id)]
        contacts = [record for record in app.sfsim.records("Contact")
                    if str(record.get("Email", "")).endswith(f"@{self.load_id}.example")]
        _unique([record["External_Id__c"] for record in accounts], self.accounts, findings)
        expected_contacts = self.accounts * self.contacts_per_account
        _unique([record["Email"] for record in contacts], expected_contacts, findings)
        account_ids = {record["Id"] for record in accounts}
        unlinked = [record["Email"] for record in contacts
                    if record.get("AccountId") not in account_ids]
        if unlinked:
            findings.other.append(f"contacts not linked to their account: {unlinked[:3]}")

        status = app.durable_status(self.load_id)
        if status is None or status["runtimeStatus"] != "Completed":
            findings.other.append(f"load {self.load_id} did not complete: "
                                  f"{None if status is None else status['runtimeStatus']}")
        else:
            summary = status["output"]
            succeeded = [level["succeeded"] for level in summary["levels"]]
            if summary["outcome"] != "succeeded" or \
                    succeeded != [self.accounts, expected_contacts]:
                findings.wrong_counts.append(
                    f"summary says {summary['outcome']} with {succeeded} succeeded for "
                    f"{[self.accounts, expected_contacts]}")

        storage = BlobServiceClient.from_connection_string(app.env["AzureWebJobsStorage"])
        claim = read_load_claim(storage, app.env["BULK_LOAD_CONTAINER"], self.load_id)
        if claim is None or not claim.started:
            findings.held.append(f"the load id's claim is {claim}, not marked started")
        findings.held += [f"ingest job {job} left open in Salesforce"
                          for job in _ingest_jobs_left_open(app)]
        return findings


def _ingest_jobs_left_open(app: WholeApp) -> list[str]:
    """Jobs that never reached an end state: each holds a slot of the org's job limits."""
    credentials = SalesforceCredentials(login_url=app.sfsim.login_url,
                                        client_id=app.sfsim.client_id,
                                        client_secret=app.sfsim.client_secret)
    with SalesforceClient(credentials, max_retries=1, backoff=0.01) as client:
        return [f"{job.id} ({job.state})" for job in client.list_jobs()
                if job.state in {"Open", "UploadComplete", "InProgress"}]
