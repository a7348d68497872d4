"""A batch job, declared once: blocks, steps, aggregators, failure limit, scheduling.

Mule 4 Batch's knobs (REFERENCE.md "Batch semantics"), validated when the objects are
built, so a bad declaration fails at import (start-up), never mid-run:

    BatchJob(
        name="contacts", block_size=100, max_failed_records=-1,
        scheduling_strategy=SchedulingStrategy.ORDERED_SEQUENTIAL, max_concurrency=4,
        steps=(
            BatchStep("validate", validate_contact),
            BatchStep("upsert", map_contact, aggregator=Aggregator(size=200, commit=upsert)),
            BatchStep("dead-letter", write_dead_letter,
                      accept_policy=AcceptPolicy.ONLY_FAILURES),
        ),
        on_complete=report,
    )

A step's function gets one `BatchRecord` and returns the record's new payload (a dict) or
None to keep it; raising fails the record at that step (the exception's type and message
are reported, never its traceback). An aggregator's `commit` gets the step's accepted
records of a group (in block order) and returns one outcome per record: None when it
succeeded, an exception when that record failed. `on_complete` gets the instance's
BatchJobResult and `onCompleteAttempt`; once an attempt returned or raised it is never
called again for the instance, only a crash while it runs calls it again (attempt 2, ...):
see shared/batch/complete.py.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.batch.source import BatchSource

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class AcceptPolicy(enum.Enum):
    """Which records a step takes, by whether an earlier step failed them."""

    NO_FAILURES = "NO_FAILURES"
    ONLY_FAILURES = "ONLY_FAILURES"
    ALL = "ALL"


class SchedulingStrategy(enum.Enum):
    """How instances of one job share the app: one at a time in creation order, or all."""

    ORDERED_SEQUENTIAL = "ORDERED_SEQUENTIAL"
    ROUND_ROBIN = "ROUND_ROBIN"


@dataclass(frozen=True)
class StepFailure:
    """Why a record failed at a step: the exception's type name and message."""

    step: str
    exception_type: str
    message: str

    @classmethod
    def of(cls, step: str, error: BaseException) -> StepFailure:
        try:
            message = str(error)[:1000]
        except Exception:  # an exception whose __str__ fails still fails only its record
            message = f"({type(error).__name__} whose message cannot be read)"
        return cls(step, type(error).__name__, encodable(message))


def encodable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) escaped as \\udcxx, so the
    failures report and anything else that stores it can be written."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class BatchRecord:
    """One record as a step sees it: its instance, position in the input, payload and
    the failures of earlier steps."""

    instance_id: str
    index: int
    payload: dict[str, Any]
    failures: tuple[StepFailure, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.failures)


StepFunction = Callable[[BatchRecord], Mapping[str, Any] | None]
AcceptExpression = Callable[[BatchRecord], bool]
CommitFunction = Callable[[Sequence[BatchRecord]], Sequence[BaseException | None]]
CompleteHook = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Aggregator:
    """Collects the records a step accepted into groups of `size`, or all of them
    (`streaming=True`), and hands each group to `commit` in one call."""

    commit: CommitFunction
    size: int | None = None
    streaming: bool = False

    def __post_init__(self) -> None:
        if self.streaming and self.size is not None:
            raise ValueError("an aggregator has a size or is streaming, never both")
        if not self.streaming and (self.size is None or self.size <= 0):
            raise ValueError("an aggregator needs a size above 0, or streaming=True")
        if not callable(self.commit):
            raise ValueError("an aggregator's commit must be a function of a group")


@dataclass(frozen=True)
class BatchStep:
    """A step: a function of one record, which records it accepts, and an aggregator."""

    name: str
    run: StepFunction | None = None
    accept_policy: AcceptPolicy = AcceptPolicy.NO_FAILURES
    accept_expression: AcceptExpression | None = None
    aggregator: Aggregator | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"step name {self.name!r} must be lower-case letters, digits "
                             "and -, at most 40 characters")
        if self.run is None and self.aggregator is None:
            raise ValueError(f"step {self.name!r} needs a function, an aggregator or both")
        if self.run is not None and not callable(self.run):
            raise ValueError(f"step {self.name!r}: run must be a function of a record")
        if self.accept_expression is not None and not callable(self.accept_expression):
            raise ValueError(f"step {self.name!r}: accept_expression must be a function of a "
                             "record returning whether the step takes it")
        if not isinstance(self.accept_policy, AcceptPolicy):
            raise ValueError(f"step {self.name!r}: accept_policy must be an AcceptPolicy")

    def accepts(self, record: BatchRecord) -> bool:
        """Mule's rule: the accept policy and then the accept expression must both hold."""
        if self.accept_policy is AcceptPolicy.NO_FAILURES and record.failed:
            return False
        if self.accept_policy is AcceptPolicy.ONLY_FAILURES and not record.failed:
            return False
        return self.accept_expression is None or bool(self.accept_expression(record))


@dataclass(frozen=True)
class BatchJob:
    """A batch job; `max_failed_records` 0 stops at the first failure, -1 never stops."""

    name: str
    steps: tuple[BatchStep, ...]
    block_size: int = 100
    max_failed_records: int = 0
    scheduling_strategy: SchedulingStrategy = SchedulingStrategy.ORDERED_SEQUENTIAL
    max_concurrency: int = 4
    on_complete: CompleteHook | None = field(default=None, compare=False)
    description: str = ""
    # Records may also be read from a view (`POST {"source": {"params": ...}}`).
    source: BatchSource | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        problems = []
        if not _NAME.fullmatch(self.name):
            problems.append("the name must be lower-case letters, digits and -, at most 40 "
                            "characters")
        if not self.steps:
            problems.append("a job needs at least one step")
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            problems.append(f"step names must be unique, got {names}")
        if not _whole(self.block_size) or not 1 <= self.block_size <= 10_000:
            problems.append(f"block_size must be 1..10000, got {self.block_size!r}")
        if not _whole(self.max_failed_records) or self.max_failed_records < -1:
            problems.append("max_failed_records must be -1 (unlimited), 0 (stop at the first "
                            f"failure) or a count, got {self.max_failed_records!r}")
        if not _whole(self.max_concurrency) or not 1 <= self.max_concurrency <= 64:
            problems.append(f"max_concurrency must be 1..64, got {self.max_concurrency!r}")
        if self.on_complete is not None and not callable(self.on_complete):
            problems.append("on_complete must be a function of the BatchJobResult")
        if not isinstance(self.scheduling_strategy, SchedulingStrategy):
            problems.append("scheduling_strategy must be a SchedulingStrategy")
        if self.source is not None and not isinstance(self.source, BatchSource):
            problems.append("source must be a BatchSource")
        if problems:
            raise ValueError(f"batch job {self.name!r}: " + "; ".join(problems))

    def step_index(self, name: str) -> int:
        return [step.name for step in self.steps].index(name)

    def failure_limit_reached(self, failed_records: int) -> bool:
        return self.max_failed_records >= 0 and failed_records > self.max_failed_records
