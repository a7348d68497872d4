from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from shared.answer_json import answer_text, camel_case, camel_keys, utc_text


def test_every_time_is_utc_text_ending_in_z():
    paris = timezone(timedelta(hours=2))
    assert utc_text(datetime(2026, 5, 1, 14, 0, tzinfo=paris)) == "2026-05-01T12:00:00Z"
    assert utc_text(datetime(2026, 5, 1, 12, 0, 0, 5000)) == "2026-05-01T12:00:00.005000Z"
    body = json.loads(answer_text({"at": datetime(2026, 5, 1, 12, tzinfo=UTC)}))
    assert body == {"at": "2026-05-01T12:00:00Z"}


def test_stored_and_snake_case_keys_become_camel_case():
    assert [camel_case(name) for name in ("run_id", "RunId", "runId", "rows")] == [
        "runId", "runId", "runId", "rows"]
    assert camel_keys({"LastTick": 1, "levels": [{"dead_lettered": 2}]}) == {
        "lastTick": 1, "levels": [{"deadLettered": 2}]}
