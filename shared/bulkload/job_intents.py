"""Which ingest job each part of a load created: a create whose answer was lost finds the
job it left Open and aborts it.

    table BULK_LOAD_JOBS_TABLE   PartitionKey = the object, RowKey = "{load id}|{level}|{part}"
        WrittenAt        when the first try to create the part's job began (this host's clock)
        Operation        the job's operation
        JobId            the job created for the part; "" while a create is under way
        Abandoned        jobs an earlier try left Open, aborted by a later one (space-separated)

The row is written before Salesforce is asked to create the job, the job id right after. A
try that finds the row without a job id knows an earlier one may have created a job that
nobody will upload to or close (the host died before the id was written, or the answer was
lost on the way). A Bulk API 2.0 job carries no mark of its own, so that job is told apart
by what Salesforce lists of it: still Open, the same object and operation (and external id
field), created by the same user after the row was written and before the new job, and
recorded by no row. A job that another part's create still under way may own is left alone:
that create records it, or its own next try aborts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.data.tables import TableClient, UpdateMode

from shared.bulkload.request import LoadLevel
from shared.salesforce import IngestJob, SalesforceClient
from shared.salesforce.errors import SalesforceError
from shared.storage.tables import ConcurrentWrite, create_entity, read_entity, safe_key

# How far Salesforce's clock may be behind this host's: widens the window a lost job was
# created in.
CLOCK_SKEW = timedelta(seconds=30)
# Longest a create can be under way (the client's timeouts and retries): a row without a job
# id written longer before a job was created cannot be the create that made it.
CREATE_UNDER_WAY_FOR = timedelta(minutes=5)
SALESFORCE_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"


@dataclass(frozen=True)
class PartJob:
    """The ingest job of one part (one CSV) of a load's level."""

    load_id: str
    level: int
    part: int

    @property
    def row_key(self) -> str:
        return safe_key(f"{self.load_id}|{self.level:03d}|{self.part:05d}")


@dataclass(frozen=True)
class PartIntent:
    """A part's row as an earlier try left it."""

    written_at: datetime
    job_id: str


def created_at(job: IngestJob) -> datetime:
    return datetime.strptime(str(job.raw["createdDate"]), SALESFORCE_TIME)


@dataclass(frozen=True)
class JobIntents:
    table: TableClient

    def begin(self, part: PartJob, level: LoadLevel, now: datetime) -> PartIntent | None:
        """Write the part's row before its job is created; an earlier try's row if any."""
        try:
            create_entity(self.table, {
                "PartitionKey": safe_key(level.object), "RowKey": part.row_key,
                "WrittenAt": now, "Operation": level.operation, "JobId": "",
            })
            return None
        except ConcurrentWrite:
            pass
        found = read_entity(self.table, safe_key(level.object), part.row_key)
        assert found is not None  # rows are never deleted
        return PartIntent(found.values["WrittenAt"], str(found.values.get("JobId") or ""))

    def record(self, part: PartJob, level: LoadLevel, job_id: str,
               abandoned: list[str] | None = None) -> None:
        entity = {"PartitionKey": safe_key(level.object), "RowKey": part.row_key,
                  "JobId": job_id}
        if abandoned:
            entity["Abandoned"] = " ".join(abandoned)
        self.table.update_entity(entity, mode=UpdateMode.MERGE)

    def abort_abandoned(self, client: SalesforceClient, part: PartJob, level: LoadLevel,
                        earlier: PartIntent, created: IngestJob) -> list[str]:
        """Abort the jobs an earlier try of `part` left Open; the ids aborted. Before the
        new job is recorded: a try that fails here leaves the row as it found it, and the
        next one looks again (for this job too)."""
        abandoned = self._abandoned(client, part, level, earlier, created)
        aborted = []
        for job in abandoned:
            try:
                client.abort_job(job.id)
            except SalesforceError as error:  # closed or ended meanwhile: not Open any more
                logging.warning("bulk load %s: job %s left by an earlier try not aborted: %s",
                                part.load_id, job.id, error)
                continue
            aborted.append(job.id)
        if aborted:
            logging.warning("bulk load %s level %d part %d: aborted job(s) %s, created by a "
                            "try whose answer was lost", part.load_id, part.level, part.part,
                            ", ".join(aborted))
        return aborted

    def _abandoned(self, client: SalesforceClient, part: PartJob, level: LoadLevel,
                   earlier: PartIntent, created: IngestJob) -> list[IngestJob]:
        since, until = earlier.written_at - CLOCK_SKEW, created_at(created)
        creator = created.raw.get("createdById")
        candidates = [
            job for job in client.list_jobs(job_type="V2Ingest")
            if job.id != created.id and job.state == "Open" and job.object == level.object
            and job.operation == level.operation and job.raw.get("createdById") == creator
            and since <= created_at(job) <= until
        ]
        if not candidates:
            return []
        owned = self._recorded(level, [job.id for job in candidates])
        under_way = self._under_way(part, level, min(created_at(job) for job in candidates))
        unowned = [job for job in candidates if job.id not in owned and not any(
            written - CLOCK_SKEW <= created_at(job) for written in under_way)]
        if level.operation != "upsert":
            return unowned
        # The listing may leave the external id field out: read each job.
        return [job for job in unowned if client.get_job(job.id).external_id_field
                == level.external_id_field]

    def _recorded(self, level: LoadLevel, job_ids: list[str]) -> set[str]:
        """Which of `job_ids` a row records (created for another part or load)."""
        names = {f"j{index}": job_id for index, job_id in enumerate(job_ids)}
        rows = self.table.query_entities(
            # Spaced: the SDK finds @names between spaces.
            "PartitionKey eq @object and ( " + " or ".join(f"JobId eq @{n}" for n in names)
            + " )", parameters={"object": safe_key(level.object), **names},
            select=["JobId"])
        return {str(row["JobId"]) for row in rows}

    def _under_way(self, part: PartJob, level: LoadLevel, first: datetime) -> list[datetime]:
        """When the other parts' creates still under way (no job id yet) began."""
        rows = self.table.query_entities(
            "PartitionKey eq @object and JobId eq '' and WrittenAt ge @since",
            parameters={"object": safe_key(level.object),
                        "since": first - CREATE_UNDER_WAY_FOR - CLOCK_SKEW},
            select=["RowKey", "WrittenAt"])
        return [row["WrittenAt"] for row in rows if row["RowKey"] != part.row_key]
