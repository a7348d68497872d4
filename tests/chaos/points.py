"""Every kill point of the crash harness: which hook arms it, which scenario reaches it.

A row is a trial: arm the point (`name` or `name@N`, the Nth time it is reached), drive the
scenario until the host dies there, start the host again on the same storage, let the work
finish and check the scenario's invariants (scenarios.py). `RANDOM` rows SIGKILL the host
at a moment drawn from the row's seed instead. A capability that lands adds its crash
points beside its code and a row per point here; a row whose invariant is broken by a
known bug carries `known_bug` (the test then expects the failure, strictly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from activities.batch import INSTANCE_FINISHED
from activities.events import BATCH_PROCESSED
from devhost.engine import crash_points as engine
from orchestrators.batch.start import INSTANCE_CLAIMED
from orchestrators.bulk_load.endpoints import CLAIMED as LOAD_ID_CLAIMED
from orchestrators.bulk_load.endpoints import MARKING_CLAIM as LOAD_CLAIM_MARKING
from orchestrators.bulk_load.endpoints import STAGED as LOAD_STAGED
from orchestrators.events import EVENTS_STORED
from shared import crash_points as app
from shared.batch.blocks import GROUP_COMMITTED, STEP_PERSISTED
from shared.bulkload.claims import RUN_CLAIMED
from shared.bulkload.jobs import JOB_CLOSED, JOB_CREATED, PART_UPLOADED
from shared.bulkload.levels import RESULTS_ID_MAP_WRITTEN, RESULTS_WRITTEN
from shared.bulkload.reports import FAILURES_REPORT_WRITTEN
from shared.events.finish import IDLE_MARKED
from shared.events.queue import POST_TRANSACTION_STORED
from shared.events.settling import EVENTS_SETTLED
from shared.sync.backlog_submission import BACKLOG_AFTER_PART_SUBMITTED
from shared.sync.pages import PAGE_AFTER_DELIVERY, PAGE_AFTER_WATERMARK
from shared.sync.partitions import (
    PARTITIONS_AFTER_JOIN,
    PARTITIONS_BEFORE_JOIN,
    PARTITIONS_JOIN_WRITE,
)
from shared.sync.run import (
    BEGIN_AFTER_CLAIM,
    BEGIN_AFTER_RECORD,
    END_AFTER_RECORD,
    END_AFTER_RELEASE,
)
from shared.sync.starter import RUN_START_AFTER_LEASE, RUN_START_AFTER_START_NEW
from tests.chaos.queue_scenarios import BatchInstance, EventDrain
from tests.chaos.scenarios import (
    BacklogRun,
    BulkLoad,
    PartitionedSyncRun,
    Scenario,
    SyncRun,
)


class Hook(Enum):
    """How the host is made to die: the setting that arms a point, and its exit code."""

    APP = (app.CRASH_SETTING, app.CRASH_EXIT_CODE)
    ENGINE = (engine.CRASH_SETTING, engine.CRASH_EXIT_CODE)
    RANDOM = ("", -9)  # SIGKILL at a random moment

    @property
    def setting(self) -> str:
        return self.value[0]

    @property
    def exit_code(self) -> int:
        return self.value[1]


@dataclass(frozen=True)
class KillPoint:
    point: str  # `name`, `name@N`; for RANDOM a label, the seed after `#`
    hook: Hook
    scenario: Callable[[], Scenario]
    known_bug: str | None = None  # the row's invariants fail today: a strict xfail
    # A random kill may or may not hit a known bug: its locks and counts are then reported
    # as a warning, while nothing lost and nothing duplicated is still asserted.
    tolerated: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scenario().name.replace(' ', '_')}:{self.point}"

    @property
    def seed(self) -> int:
        return int(self.point.rsplit("#", 1)[-1]) if self.hook is Hook.RANDOM else 0


def event_drain_one_large_post() -> EventDrain:
    """240 events in one post: three transactions (99, 99, 42 rows) written side by side;
    the post that died unanswered is posted again."""
    return EventDrain(assets=240, retired=10, per_post=240, name="event drain one large post")


def sync_run_started_once() -> SyncRun:
    """The host dies once the run's instance is started (row and start message written),
    before the app counts the tick: after the restart that run is the only one."""
    return SyncRun(runs=1, name="sync run started once")


def batch_instance_commit_may_repeat() -> BatchInstance:
    """A crash between a group's commit in Salesforce and its persisted outcome sends that
    one group again after the restart (an upsert by external id: nothing is duplicated)."""
    return BatchInstance(commit_may_repeat=True)


POINTS: tuple[KillPoint, ...] = (
    # the sync run's start: the lease, the engine's instance row, begin
    KillPoint(RUN_START_AFTER_LEASE, Hook.APP, SyncRun),
    KillPoint(engine.START_BEFORE_MESSAGE, Hook.ENGINE, SyncRun),
    # start_new done, its tick not counted (sync.start.after_start_new is a fault point only)
    KillPoint(engine.START_AFTER_MESSAGE, Hook.ENGINE, sync_run_started_once),
    KillPoint(BEGIN_AFTER_CLAIM, Hook.APP, SyncRun),
    KillPoint(BEGIN_AFTER_RECORD, Hook.APP, SyncRun),
    KillPoint(engine.ACTIVITY_BEFORE_RESULT, Hook.ENGINE, SyncRun),
    # pages
    KillPoint(PAGE_AFTER_DELIVERY, Hook.APP, SyncRun),
    KillPoint(f"{PAGE_AFTER_DELIVERY}@4", Hook.APP, SyncRun),
    KillPoint(PAGE_AFTER_WATERMARK, Hook.APP, SyncRun),
    KillPoint(f"{engine.COMMIT_BEFORE_HISTORY}@3", Hook.ENGINE, SyncRun),
    KillPoint(f"{engine.COMMIT_BEFORE_CONSUME}@3", Hook.ENGINE, SyncRun),
    KillPoint(engine.COMMIT_BEFORE_ROW, Hook.ENGINE, SyncRun),
    KillPoint(engine.CONTINUE_AS_NEW_BEFORE_COMMIT, Hook.ENGINE, SyncRun),
    # end
    KillPoint(END_AFTER_RECORD, Hook.APP, SyncRun),
    KillPoint(END_AFTER_RELEASE, Hook.APP, SyncRun),
    KillPoint("random#1", Hook.RANDOM, SyncRun),
    # a run in key partitions: a page of one accepted, every partition done and the
    # watermark not moved yet, the watermark moved and the join's answer not recorded;
    # the join and the end are one activity: its end recorded, the lease released, and
    # its answer lost
    KillPoint(f"{PAGE_AFTER_DELIVERY}@3", Hook.APP, PartitionedSyncRun),
    KillPoint(PARTITIONS_BEFORE_JOIN, Hook.APP, PartitionedSyncRun),
    KillPoint(PARTITIONS_AFTER_JOIN, Hook.APP, PartitionedSyncRun),
    KillPoint(END_AFTER_RECORD, Hook.APP, PartitionedSyncRun),
    KillPoint(END_AFTER_RELEASE, Hook.APP, PartitionedSyncRun),
    # a backlog run: two parts' upsert jobs submitted, the third not, the watermark unmoved
    KillPoint(f"{BACKLOG_AFTER_PART_SUBMITTED}@2", Hook.APP, BacklogRun),
    # the bulk load's claim and start
    KillPoint(LOAD_ID_CLAIMED, Hook.APP, BulkLoad),
    KillPoint(LOAD_STAGED, Hook.APP, BulkLoad),
    KillPoint(engine.START_BEFORE_MESSAGE, Hook.ENGINE, BulkLoad),
    KillPoint(RUN_CLAIMED, Hook.APP, BulkLoad),
    # jobs: create, upload, close
    KillPoint(JOB_CREATED, Hook.APP, BulkLoad),
    KillPoint(PART_UPLOADED, Hook.APP, BulkLoad),
    KillPoint(JOB_CLOSED, Hook.APP, BulkLoad),
    KillPoint(f"{JOB_CLOSED}@2", Hook.APP, BulkLoad),
    # results: after the Salesforce results were read and written, before they are recorded
    KillPoint(RESULTS_ID_MAP_WRITTEN, Hook.APP, BulkLoad),
    KillPoint(RESULTS_WRITTEN, Hook.APP, BulkLoad),
    KillPoint(f"{RESULTS_WRITTEN}@2", Hook.APP, BulkLoad),
    KillPoint(FAILURES_REPORT_WRITTEN, Hook.APP, BulkLoad),
    KillPoint(f"{engine.COMMIT_BEFORE_HISTORY}@4", Hook.ENGINE, BulkLoad),
    KillPoint("random#2", Hook.RANDOM, BulkLoad),
    # a batch job instance: its claim, its blocks' persisted steps, its aggregator groups,
    # its end (the ordered queue's next instance must run)
    KillPoint(INSTANCE_CLAIMED, Hook.APP, BatchInstance),
    KillPoint(STEP_PERSISTED, Hook.APP, BatchInstance),
    KillPoint(f"{STEP_PERSISTED}@7", Hook.APP, BatchInstance),
    KillPoint(GROUP_COMMITTED, Hook.APP, batch_instance_commit_may_repeat),
    KillPoint(f"{GROUP_COMMITTED}@2", Hook.APP, batch_instance_commit_may_repeat),
    KillPoint(f"{engine.ACTIVITY_BEFORE_RESULT}@5", Hook.ENGINE, BatchInstance),
    KillPoint(engine.CONTINUE_AS_NEW_BEFORE_COMMIT, Hook.ENGINE, BatchInstance),
    KillPoint(INSTANCE_FINISHED, Hook.APP, BatchInstance),
    KillPoint("random#3", Hook.RANDOM, batch_instance_commit_may_repeat),
    # the event queue: a post, a batch applied in Salesforce, settled, the idle mark
    KillPoint(EVENTS_STORED, Hook.APP, EventDrain),
    # one post of three transactions (side by side): the host dies after the first commits
    KillPoint(POST_TRANSACTION_STORED, Hook.APP, event_drain_one_large_post),
    KillPoint(BATCH_PROCESSED, Hook.APP, EventDrain),
    KillPoint(f"{BATCH_PROCESSED}@3", Hook.APP, EventDrain),
    KillPoint(EVENTS_SETTLED, Hook.APP, EventDrain),
    # an activity's work done, its answer lost (the 6th here: a settle): it runs again
    KillPoint(f"{engine.ACTIVITY_BEFORE_RESULT}@6", Hook.ENGINE, EventDrain),
    KillPoint(engine.CONTINUE_AS_NEW_BEFORE_COMMIT, Hook.ENGINE, EventDrain),
    KillPoint(IDLE_MARKED, Hook.APP, EventDrain),
    KillPoint("random#4", Hook.RANDOM, EventDrain),
)


@dataclass(frozen=True)
class FaultPoint:
    point: str
    test: str  # `path::function` of the test that arms it and asserts the outcome


FAULT_POINTS: tuple[FaultPoint, ...] = (
    # every partition is done, the join's write fails: retryable, nothing moved or deleted
    FaultPoint(PARTITIONS_JOIN_WRITE, "tests/sync/test_sync_partitions.py::test_a_join_"
               "whose_storage_write_failed_is_retryable_and_leaves_everything_as_it_was"),
    # the run is started, counting the tick fails: still a start (202), run and lease kept
    FaultPoint(RUN_START_AFTER_START_NEW, "tests/sync/test_sync_on_local_host.py::"
               "test_a_started_run_whose_tick_is_not_counted_is_answered_as_started"),
    # the load is started, marking its load id's claim started fails: still 202, run once
    FaultPoint(LOAD_CLAIM_MARKING, "tests/bulkload/test_bulk_load_api_on_local_host.py::"
               "test_a_started_load_whose_claim_is_not_marked_is_answered_as_started"),
)
