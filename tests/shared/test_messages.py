"""Messages survive the trip through durable history: to_json -> JSON text -> from_json."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.messages import Message, MessageError


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Part(Message):
    blob: str
    records: int


@dataclass(frozen=True)
class LevelResult(Message):
    run_id: str
    outcome: Outcome
    started_at: datetime
    parts: tuple[Part, ...]
    wait: timedelta = timedelta(seconds=5)
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _round_trip(message: Message) -> dict:
    return json.loads(json.dumps(message.to_json()))


def test_a_message_comes_back_equal_after_json() -> None:
    message = LevelResult(
        "r-1", Outcome.FAILED, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        (Part("a.csv", 3), Part("b.csv", 0)), timedelta(seconds=1.5), "boom", {"failed": 2},
    )
    wire = _round_trip(message)
    assert wire["outcome"] == "failed"
    assert wire["started_at"] == "2026-01-02T03:04:05+00:00"
    assert wire["parts"][1] == {"blob": "b.csv", "records": 0}
    assert LevelResult.from_json(wire) == message


def test_json_text_is_decoded_as_the_durable_client_double_encodes_inputs() -> None:
    message = Part("a.csv", 3)
    assert Part.from_json(json.dumps(message.to_json())) == message


def test_defaults_fill_missing_optional_fields() -> None:
    parsed = LevelResult.from_json({"run_id": "r", "outcome": "succeeded",
                                    "started_at": "2026-01-02T00:00:00+00:00", "parts": []})
    assert parsed.error is None and parsed.wait == timedelta(seconds=5) and parsed.parts == ()


@pytest.mark.parametrize(("payload", "named"), [
    ({"blob": "a"}, "'records' is missing"),
    ({"blob": "a", "records": "3"}, "Part.records: expected int"),
    ({"blob": "a", "records": True}, "Part.records: expected int"),
    ([1, 2], "expected an object"),
    ("not json", "not JSON"),
])
def test_a_wrong_payload_is_refused_naming_the_field(payload: object, named: str) -> None:
    with pytest.raises(MessageError, match=named):
        Part.from_json(payload)


def test_an_unknown_enum_value_is_refused() -> None:
    with pytest.raises(MessageError, match="not a Outcome"):
        LevelResult.from_json({"run_id": "r", "outcome": "maybe",
                               "started_at": "2026-01-02T00:00:00+00:00", "parts": []})
