"""shared/bulkload/views.py: one view of a load from its input, progress and summary (what
`GET /api/bulk-loads[/{loadId}]` and the console show)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.bulkload.views import LoadSnapshot, load_view

LEVELS = [{"name": "accounts", "object": "Account", "operation": "upsert"},
          {"name": "contacts", "object": "Contact", "operation": "insert"}]
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snapshot(runtime_status: str, custom_status=None, output=None) -> LoadSnapshot:
    # The SDK hands the input over as JSON text, encoded twice.
    load_input = json.dumps(json.dumps({"load_id": "L1", "levels": LEVELS, "records": [10, 30]}))
    return LoadSnapshot("L1", runtime_status, CREATED, CREATED, load_input, custom_status,
                        output)


def test_a_load_that_has_not_begun_shows_its_levels_pending_with_their_record_counts():
    view = load_view(snapshot("Pending"))

    assert [(level["level"], level["object"], level["state"], level["records"])
            for level in view["levels"]] == [("accounts", "Account", "pending", 10),
                                             ("contacts", "Contact", "pending", 30)]
    assert view["cancelUrl"] == "/api/bulk-loads/L1/cancel"
    assert (view["failuresUrl"], view["resultsUrl"]) == (None, None)
    assert (view["createdAt"], view["percent"]) == ("2026-03-01T12:00:00Z", 0.0)


def test_a_running_load_shows_its_progress_per_level():
    progress = {"loadId": "L1", "phase": "waiting", "levelNumber": 2, "processed": 15,
                "levels": [
                    {"level": "accounts", "state": "completed", "submitted": 10,
                     "succeeded": 9, "failed": 1, "orphansSkipped": 0},
                    {"level": "contacts", "state": "pending", "submitted": 0, "succeeded": 0,
                     "failed": 0, "orphansSkipped": 0}]}

    view = load_view(snapshot("Running", custom_status=progress))

    assert (view["phase"], view["levelNumber"], view["outcome"]) == ("waiting", 2, None)
    accounts, contacts = view["levels"]
    assert (accounts["state"], accounts["records"], accounts["succeeded"],
            accounts["failed"], accounts["processed"], accounts["percent"]) == \
        ("completed", 10, 9, 1, 10, 100.0)
    assert (contacts["object"], contacts["state"], contacts["records"],
            contacts["percent"]) == ("Contact", "waiting", 30, 50.0)
    assert view["percent"] == 62.5  # (10 + 15) of 40 records


def test_an_ended_load_shows_its_summary_and_where_its_reports_are():
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

    assert (view["outcome"], view["summary"], view["percent"]) == \
        ("completed_with_failures", summary, 100.0)
    assert view["levels"][1]["orphansSkipped"] == 3
    assert [level["processed"] for level in view["levels"]] == [10, 27]
    assert view["cancelUrl"] is None
    assert (view["failuresUrl"], view["resultsUrl"]) == ("/api/bulk-loads/L1/failures",
                                                         "/api/bulk-loads/L1/results")


def test_an_unreadable_input_still_gives_a_view():
    view = load_view(LoadSnapshot("L2", "Failed", None, None, "not json", None, None))

    assert (view["loadId"], view["levels"], view["createdAt"]) == ("L2", [], None)
