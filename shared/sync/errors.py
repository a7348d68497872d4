"""How a step of a sync run fails: a `SyncRunError` naming the job, a code and the cause."""

from __future__ import annotations

from shared.sync.messages import StepFailure


class SyncRunError(Exception):
    """A run step failed; the message names the job and the cause, never a secret.

    `retryable` says whether trying the page again later may succeed (sink unavailable) or
    not (source missing, credentials refused, watermark taken over by another run).
    """

    def __init__(self, job: str, code: str, message: str, retryable: bool = False) -> None:
        self.job = job
        self.code = code
        self.message = message
        self.retryable = retryable
        super().__init__(f"sync job {job!r}: {code}: {message}")

    def as_failure(self) -> StepFailure:
        return StepFailure(self.code, str(self), self.retryable)
