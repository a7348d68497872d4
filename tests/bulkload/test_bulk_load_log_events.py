"""A bulk load's log events (shared/bulkload/load_events.py): a load on the local host logs
its start, each level's staging, jobs and end, and its own end, each with the load's id and
counts as fields; the fields' values here are read back from the lines the host printed
(the message repeats every field as key=value)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from shared.bulkload.load_events import log_level_ended, log_load_ended
from shared.bulkload.messages import JobSnapshot, LevelResults
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore
from shared.log_fields import event_fields
from tests.bulkload.test_bulk_load_on_local_host import SEED_LOAD

EVENT_LINE = re.compile(r"(bulk load [a-z ]+): (.*)$")


def logged_events(output: str) -> list[tuple[str, dict[str, str]]]:
    """(event, fields) of every bulk-load event line the host printed, in order."""
    events = []
    for line in output.splitlines():
        match = EVENT_LINE.search(line)
        if match:
            fields = dict(pair.split("=", 1) for pair in match.group(2).split(", "))
            events.append((match.group(1), fields))
    return events


def test_a_load_logs_its_start_levels_jobs_and_end_with_ids_and_counts(start_bulk_host):
    host = start_bulk_host()
    assert host.post(SEED_LOAD).status_code == 202
    assert host.wait_for_end("seed-example")["runtimeStatus"] == "Completed"

    events = logged_events(host.host.output())
    named = [event for event, _ in events]
    assert named[0] == "bulk load started" and named[-1] == "bulk load ended", named
    started, ended = events[0][1], events[-1][1]
    assert (started["load_id"], started["levels"], started["records"]) == ("seed-example", "2",
                                                                            "5")
    assert (ended["load_id"], ended["outcome"], ended["levels"], ended["loaded_records"],
            ended["failed_records"]) == ("seed-example", "succeeded", "2", "5", "0")

    staged = [fields for event, fields in events if event == "bulk load level staged"]
    assert [(f["load_id"], f["level_number"], f["object"], f["submitted"], f["skipped"])
            for f in staged] == [("seed-example", "1", "Account", "2", "False"),
                                 ("seed-example", "2", "Contact", "3", "False")]
    created = [fields["job_id"] for event, fields in events if event == "bulk load job created"]
    closed = {fields["job_id"]: fields for event, fields in events
              if event == "bulk load job closed"}
    job_ends = {fields["job_id"]: fields for event, fields in events
                if event == "bulk load job ended"}
    assert len(created) == 2 and set(closed) == set(created) == set(job_ends)
    assert {f["load_id"] for f in [*closed.values(), *job_ends.values()]} == {"seed-example"}
    assert sorted((f["level_number"], f["state"], f["processed"], f["failed"])
                  for f in job_ends.values()) == [("1", "JobComplete", "2", "0"),
                                                  ("2", "JobComplete", "3", "0")]
    level_ends = [fields for event, fields in events if event == "bulk load level ended"]
    assert [(f["level_number"], f["outcome"], f["jobs"], f["succeeded"], f["failed"])
            for f in level_ends] == [("1", "succeeded", "1", "2", "0"),
                                     ("2", "succeeded", "1", "3", "0")]


LEVELS = (LoadLevel.from_json({
    "name": "contacts", "object": "Contact", "operation": "insert", "external_id_field": None,
    "parent": None, "parent_reference_field": None}),)


@pytest.mark.parametrize(("jobs", "results", "outcome", "level"), [
    ((JobSnapshot("750A", "JobComplete", 3, 0),), LevelResults(3), "succeeded", logging.INFO),
    ((JobSnapshot("750A", "JobComplete", 3, 1),), LevelResults(2, 1), "completed_with_failures",
     logging.WARNING),
    ((JobSnapshot("750A", "Failed", 0, 0),), LevelResults(0, 0, 3), "failed", logging.ERROR),
])
def test_a_levels_end_says_its_outcome_at_a_level_to_match(caplog, jobs, results, outcome,
                                                             level):
    store = LoadStore(None, "load-7/run-1")  # type: ignore[arg-type]  # only its prefix is read
    with caplog.at_level(logging.INFO, "shared.bulkload.load_events"):
        log_level_ended(store, LEVELS, 0, jobs, results)
    *_, level_end = caplog.records
    assert level_end.levelno == level
    fields = event_fields(level_end)
    assert (fields["event"], fields["load_id"], fields["outcome"], fields["jobs_unsuccessful"]) \
        == ("bulk load level ended", "load-7", outcome, int(outcome == "failed"))


def test_a_failed_load_ends_with_an_error_line(caplog):
    summary = {"loadId": "load-7", "outcome": "failed", "levels": [{}, {}],
               "loadedRecords": 2, "failedRecords": 3, "elapsedSeconds": 1.5, "retryOf": None,
               "cancelReason": None}
    with caplog.at_level(logging.INFO, "shared.bulkload.load_events"):
        log_load_ended("load-7", json.dumps(summary))
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert event_fields(record) == {"event": "bulk load ended", "load_id": "load-7",
                                    "outcome": "failed", "levels": 2, "loaded_records": 2,
                                    "failed_records": 3, "elapsed_seconds": 1.5}
