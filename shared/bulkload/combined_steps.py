"""Steps of a load that follow each other, run as one activity (`combined_steps` in the
load's input): the run claimed and its first level staged; a level's results read and the
next level staged; the reports written and the summary kept. Each saves the orchestration
a round trip through the Durable backend between two steps.

Staging done this way is only ahead of its own step: when it fails, the orchestration
stages the level as its own step (with that step's retries and its STAGING_FAILED
report), so the step it rides on never fails for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.bulkload import levels
from shared.bulkload.claims import claim_load_run, keep_summary
from shared.bulkload.job_intents import JobIntents, PartJob
from shared.bulkload.jobs import submit_part_job
from shared.bulkload.messages import (
    ClaimAndStageResult,
    ClaimRunResult,
    CollectAndStageResult,
    FailuresReport,
    JobSnapshot,
    StagedLevel,
    StageLevelRequest,
)
from shared.bulkload.progress import with_failures_report
from shared.bulkload.reports import write_reports
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore
from shared.salesforce import SalesforceClient


@dataclass(frozen=True)
class PartSubmitter:
    """Submits the parts of a level staged ahead (jobs.py), for the load `load_id`."""

    client: SalesforceClient
    intents: JobIntents
    load_id: str

    def submit_ahead(self, store: LoadStore, stage: StageLevelRequest,
                     staged: StagedLevel | None) -> tuple[JobSnapshot, ...]:
        """The jobs of the level's parts, in order, up to the first that could not be
        submitted: that one and the rest are left to the level's own step, which has its
        retries and reports its failure."""
        if staged is None or stage.skip is not None:
            return ()
        submitted: list[JobSnapshot] = []
        for number, part in enumerate(staged.parts):
            try:
                submitted.append(submit_part_job(
                    self.client, self.intents, store, PartJob(self.load_id, stage.level, number),
                    stage.levels[stage.level], part.blob, datetime.now(UTC)))
            except Exception:
                logging.exception("bulk load %s: part %d of level %d not submitted ahead; its "
                                  "level's own step submits it", self.load_id, number,
                                  stage.level)
                break
        return tuple(submitted)


def claim_and_stage_first(store: LoadStore, load_id: str, run_token: str,
                          stage: StageLevelRequest, submitter: PartSubmitter | None = None,
                          ) -> ClaimAndStageResult:
    """Claim the run (claims.py); if this execution claimed it, stage `stage`'s level, and
    with a `submitter` submit its parts."""
    run = claim_load_run(store, load_id, run_token)
    claim = ClaimRunResult(run.claimed, run.earlier_summary)
    if not run.claimed:
        return ClaimAndStageResult(claim, None)
    staged = stage_ahead(store, stage)
    submitted = submitter.submit_ahead(store, stage, staged) if submitter is not None else ()
    return ClaimAndStageResult(claim, staged, submitted)


def collect_and_stage_next(
    store: LoadStore, client: SalesforceClient, load_levels: Sequence[LoadLevel],
    level_index: int, jobs: Sequence[JobSnapshot], columns: Sequence[str],
    stage_next: StageLevelRequest | None, submitter: PartSubmitter | None = None,
) -> CollectAndStageResult:
    """Read the level's results (levels.py), then stage `stage_next`'s level, if given, and
    with a `submitter` submit its parts."""
    id_map: dict[str, str] = {}
    results = levels.collect_level_results(store, client, load_levels, level_index, jobs,
                                           columns, id_map_kept=id_map)
    if stage_next is None:
        return CollectAndStageResult(results, None)
    parent_ids = None
    if stage_next.levels[stage_next.level].parent == level_index:
        # The ID map just read, with the ids a retried load inherited: not read back.
        parent_ids = {**levels.read_id_map(store, level_index,
                                           (levels.INHERITED_ID_MAP_FILE,)), **id_map}
    staged = stage_ahead(store, stage_next, parent_ids)
    submitted = (submitter.submit_ahead(store, stage_next, staged) if submitter is not None
                 else ())
    return CollectAndStageResult(results, staged, submitted)


def stage_ahead(store: LoadStore, stage: StageLevelRequest,
                parent_ids: Mapping[str, str] | None = None) -> StagedLevel | None:
    """The level staged, or None when it could not be: its own step then stages it."""
    try:
        return levels.stage_level(store, stage.levels, stage.level, stage.upload_limit,
                                  stage.skip.as_error() if stage.skip is not None else None,
                                  parent_ids)
    except Exception:  # the staging step tries again, and reports it if it fails too
        logging.exception("bulk load %s: level %d not staged ahead; its own step stages it",
                          store.prefix, stage.level)
        return None


def write_reports_and_keep_summary(store: LoadStore, level_count: int, load_id: str,
                                   summary: str) -> FailuresReport:
    """Write the reports (reports.py), then keep the summary with their row count."""
    report = write_reports(store, level_count)
    keep_summary(store, load_id, json.dumps(with_failures_report(json.loads(summary),
                                                                 report)))
    return report
