"""What the bulk_load orchestration and its activities pass each other: small typed messages.

References (blob names, the run's folder), counts and job states only: records and CSV stay
in Blob Storage, so the orchestration's history does not grow with the size of a load.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from shared.bulkload.fingerprint import LevelFingerprint
from shared.bulkload.request import LoadLevel
from shared.messages import Message
from shared.salesforce import IngestJob


@dataclass(frozen=True)
class LoadInput(Message):
    """The orchestration's input: where the load is staged and how to run it, no records."""

    load_id: str
    prefix: str
    levels: tuple[LoadLevel, ...]
    records: tuple[int, ...]
    poll_interval: float
    max_wait: float
    upload_limit: int
    activity_attempts: int
    activity_retry_delay: float
    first_poll_delay: float = 1.0
    fingerprint: tuple[LevelFingerprint, ...] = ()
    origin: str | None = None  # the load whose failed records this load retries
    # Child levels are prepared while their parent's jobs run. False in the input of a load
    # started by an earlier version, whose history must replay without that step.
    prepare_children: bool = False
    # Steps that follow each other run as one activity (orchestration.py): a part's job
    # created, uploaded and closed; the run claimed and the first level staged; a level's
    # results read and the next level staged; the reports written and the summary kept.
    # False in the input of a load started by an earlier version, whose history must
    # replay with each step its own activity.
    combined_steps: bool = False
    # A level staged by the step before its own (combined_steps) also has its parts
    # submitted there. False in the input of a load started by an earlier version, whose
    # history must replay with each part submitted by its level's own step.
    submit_ahead: bool = False
    # SHA-256 of the body as posted, kept beside the records (staged.py): a re-post of the
    # same bytes is the same load, another is compared record by record. None for a load
    # fingerprinted at its start (`fingerprint`) or a retry of failed records.
    body_digest: str | None = None
    # The jobs of a level after the first are polled when they should end, by the pace of
    # the level before (progress.predicted_poll_at). False in the input of a load started
    # by an earlier version, whose history must replay with the polls it had.
    predicted_polls: bool = False


class LevelErrorCode(enum.Enum):
    """Why a level failed, as the summary and the failures CSV name it."""

    SALESFORCE_UNAVAILABLE = "SALESFORCE_UNAVAILABLE"  # a call failed after every retry
    STAGING_FAILED = "STAGING_FAILED"  # the level's CSV could not be written
    RESULTS_UNAVAILABLE = "RESULTS_UNAVAILABLE"  # the jobs ended, their results unread
    JOB_FAILED = "JOB_FAILED"  # Salesforce ended a job Failed or Aborted
    JOB_STALLED = "JOB_STALLED"  # a job ran past BULK_LOAD_MAX_WAIT and was aborted
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class LevelError(Message):
    code: LevelErrorCode
    message: str  # one line, for people: never an exception's text or a traceback

    def as_error(self) -> str:
        """The `CODE:message` form of the failure report's error column (as Salesforce's)."""
        return f"{self.code.value}:{self.message}"


class StopKind(enum.Enum):
    """Why the levels still to come are skipped."""

    CANCELLED = "CANCELLED"
    LEVEL_FAILED = "LEVEL_FAILED"


@dataclass(frozen=True)
class StopReason(Message):
    kind: StopKind
    message: str

    def as_error(self) -> str:
        """The `CODE:message` form of the failure report's error column (as Salesforce's)."""
        return f"{self.kind.value}:{self.message}"


@dataclass(frozen=True)
class ClaimRunRequest(Message):
    prefix: str
    run_token: str
    load_id: str


@dataclass(frozen=True)
class ClaimRunResult(Message):
    claimed: bool
    earlier_summary: str | None = None  # JSON text of the summary of the run that loaded


@dataclass(frozen=True)
class KeepSummaryRequest(Message):
    prefix: str
    load_id: str
    summary: str  # JSON text


@dataclass(frozen=True)
class ReportLevelFailureRequest(Message):
    """Every record of a level that failed before its results were read, with why."""

    prefix: str
    levels: tuple[LoadLevel, ...]
    level: int
    error: LevelError


@dataclass(frozen=True)
class StageLevelRequest(Message):
    prefix: str
    levels: tuple[LoadLevel, ...]
    level: int
    upload_limit: int
    skip: StopReason | None = None  # every record of the level is written as an orphan


@dataclass(frozen=True)
class PrepareLevelRequest(Message):
    """Decode and format a child level's records while its parent level's jobs run. With
    `body_digest` (the load's), a kept body with that digest is not validated again."""

    prefix: str
    level: int
    body_digest: str | None = None


@dataclass(frozen=True)
class StagedPart(Message):
    blob: str
    records: int
    size_bytes: int


@dataclass(frozen=True)
class StagedLevel(Message):
    parts: tuple[StagedPart, ...] = ()
    submitted: int = 0
    orphans: int = 0
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateJobRequest(Message):
    level: LoadLevel
    load_id: str
    level_index: int
    part: int  # the part's position in the level: with the load and level, names its job


@dataclass(frozen=True)
class UploadPartRequest(Message):
    prefix: str
    job_id: str
    blob: str


@dataclass(frozen=True)
class SubmitPartRequest(Message):
    """Create the part's job, upload its CSV and close the job: one activity."""

    level: LoadLevel
    load_id: str
    level_index: int
    part: int  # the part's position in the level: with the load and level, names its job
    prefix: str
    blob: str


@dataclass(frozen=True)
class JobSnapshot(Message):
    """An ingest job as last seen; `processed` and `failed` count records."""

    id: str
    state: str
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    # When Salesforce last changed the job (at the close, then at the end), by its clock,
    # and the seconds it spent applying records: the polls of the next level predict its
    # jobs' end from them (progress.py). None from an earlier version or an org silent on
    # them.
    changed_at: datetime | None = None
    active_seconds: float | None = None

    @classmethod
    def of(cls, job: IngestJob) -> JobSnapshot:
        return cls(job.id, job.state, job.number_records_processed, job.number_records_failed,
                   job.error_message, job.system_modstamp, job.active_processing_seconds)

    @property
    def ended(self) -> bool:
        return self.state in IngestJob.TERMINAL_STATES

    @property
    def unsuccessful(self) -> bool:
        return self.state in ("Failed", "Aborted")


@dataclass(frozen=True)
class JobsRequest(Message):
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class JobSnapshots(Message):
    jobs: tuple[JobSnapshot, ...]


@dataclass(frozen=True)
class CollectResultsRequest(Message):
    prefix: str
    levels: tuple[LoadLevel, ...]
    level: int
    jobs: tuple[JobSnapshot, ...]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class LevelResults(Message):
    succeeded: int = 0
    failed: int = 0
    unprocessed: int = 0
    failed_by_error: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimAndStageRequest(Message):
    """Claim the run, then (if claimed) stage its first level; with `submit_load_id`, also
    submit the staged level's parts."""

    claim: ClaimRunRequest
    stage: StageLevelRequest
    submit_load_id: str | None = None


@dataclass(frozen=True)
class ClaimAndStageResult(Message):
    claim: ClaimRunResult
    staged: StagedLevel | None = None  # None: not claimed, or left to the staging step
    # The jobs of the staged level's first parts, in order; the others are left to the
    # level's own step.
    submitted: tuple[JobSnapshot, ...] = ()


@dataclass(frozen=True)
class CollectAndStageRequest(Message):
    """Read a level's results, then stage the next level (when there is one to stage)."""

    collect: CollectResultsRequest
    stage_next: StageLevelRequest | None = None
    submit_load_id: str | None = None  # also submit the staged level's parts


@dataclass(frozen=True)
class CollectAndStageResult(Message):
    results: LevelResults
    staged_next: StagedLevel | None = None  # None: none asked, or left to the staging step
    submitted_next: tuple[JobSnapshot, ...] = ()  # as ClaimAndStageResult.submitted


@dataclass(frozen=True)
class WriteFailuresRequest(Message):
    prefix: str
    level_count: int


@dataclass(frozen=True)
class FailuresReport(Message):
    blob: str
    rows: int


@dataclass(frozen=True)
class FinishLoadRequest(Message):
    """Write the reports, then keep the summary with the failures report's row count."""

    prefix: str
    level_count: int
    load_id: str
    summary: str  # JSON text, its failedRecords still unknown
