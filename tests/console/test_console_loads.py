"""shared/console/loads.py: one view of a load from its input, progress and summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.console.loads import LoadSnapshot, load_view

LEVELS = [{"name": "accounts", "object": "Account", "operation": "upsert"},
          {"name": "contacts", "object": "Contact", "operation": "insert"}]
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snapshot(runtime_status: str, custom_status=None, output=None) -> LoadSnapshot:
    # The SDK hands the input over as JSON text, encoded twice.
    load_input = json.dumps(json.dumps({"loadId": "L1", "levels": LEVELS, "records": [10, 30]}))
    return LoadSnapshot("L1", runtime_status, CREATED, CREATED, load_input, custom_status,
                        output)


def test_a_load_that_has_not_begun_shows_its_levels_pending_with_their_record_counts():
    view = load_view(snapshot("Pending"))

    assert [(level["level"], level["object"], level["state"], level["records"])
            for level in view["levels"]] == [("accounts", "Account", "pending", 10),
                                             ("contacts", "Contact", "pending", 30)]
    assert view["cancelUrl"] == "bulk-loads/L1/cancel"
    assert view["failuresUrl"] is None
    assert view["createdAt"] == "2026-03-01T12:00:00Z"


def test_a_running_load_shows_its_progress_per_level():
    progress = {"loadId": "L1", "phase": "waiting", "levelNumber": 2, "levels": [
        {"level": "accounts", "state": "completed", "submitted": 10, "succeeded": 9,
         "failed": 1, "orphansSkipped": 0},
        {"level": "contacts", "state": "pending", "submitted": 0, "succeeded": 0,
         "failed": 0, "orphansSkipped": 0}]}

    view = load_view(snapshot("Running", custom_status=progress))

    assert (view["phase"], view["levelNumber"], view["outcome"]) == ("waiting", 2, None)
    accounts, contacts = view["levels"]
    assert (accounts["state"], accounts["records"], accounts["succeeded"],
            accounts["failed"]) == ("completed", 10, 9, 1)
    assert (contacts["object"], contacts["records"]) == ("Contact", 30)


def test_an_ended_load_shows_its_summary_and_where_its_failures_are():
    summary = {"loadId": "L1", "outcome": "completed_with_failures", "cancelReason": None,
               "elapsedSeconds": 12.5, "failedRecords": 4, "levels": [
                   {"level": "accounts", "object": "Account", "state": "completed",
                    "records": 10, "submitted": 10, "succeeded": 9, "failed": 1,
                    "unprocessed": 0, "orphansSkipped": 0, "error": None},
                   {"level": "contacts", "object": "Contact", "state": "completed",
                    "records": 30, "submitted": 27, "succeeded": 27, "failed": 0,
                    "unprocessed": 0, "orphansSkipped": 3, "error": None}]}

    view = load_view(snapshot("Completed", custom_status={"phase": "completed"},
                              output=summary))

    assert view["outcome"] == "completed_with_failures"
    assert (view["elapsedSeconds"], view["failedRecords"]) == (12.5, 4)
    assert view["levels"][1]["orphansSkipped"] == 3
    assert view["cancelUrl"] is None
    assert view["failuresUrl"] == "bulk-loads/L1/failures"


def test_an_unreadable_input_still_gives_a_view():
    view = load_view(LoadSnapshot("L2", "Failed", None, None, "not json", None, None))

    assert (view["loadId"], view["levels"], view["createdAt"]) == ("L2", [], None)
