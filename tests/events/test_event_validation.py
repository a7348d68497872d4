"""POST bodies -> events, or every problem with the bad event and field named."""

from __future__ import annotations

import json

import pytest

from shared.events.validation import MAX_EVENTS, Event, EventError, Operation, parse_events


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def errors_of(raw: bytes) -> list[EventError]:
    parsed = parse_events(raw)
    assert parsed and all(isinstance(item, EventError) for item in parsed), parsed
    return parsed  # type: ignore[return-value]


def test_one_event_or_a_list_of_events() -> None:
    single = parse_events(body({"object": "Asset", "id": 7, "operation": "upsert"}))
    listed = parse_events(body({"events": [
        {"object": "Asset", "id": "8", "operation": "delete", "version": 3},
        {"object": "Asset", "id": 9, "operation": "upsert", "payload": {"why": "é"}},
    ]}))

    assert single == [Event("Asset", "7", Operation.UPSERT)]
    assert listed == [Event("Asset", "8", Operation.DELETE, None, 3),
                      Event("Asset", "9", Operation.UPSERT, '{"why":"é"}', None)]


def test_every_bad_event_is_named_with_its_field_and_code() -> None:
    errors = errors_of(body({"events": [
        {"object": "Asset", "id": 1, "operation": "upsert"},
        {"object": "Account", "id": 2, "operation": "upsert"},
        {"object": "Asset", "id": "x", "operation": "merge", "version": -1},
        {"object": "Asset", "id": 4, "operation": "upsert", "colour": "red"},
        {"object": "Asset", "operation": "upsert", "payload": [1]},
        "not an event",
    ]}))

    found = {(error.index, error.field, error.code) for error in errors}
    assert found == {
        (1, "object", "UNKNOWN_OBJECT"),
        (2, "id", "INVALID_ID"), (2, "operation", "INVALID_OPERATION"),
        (2, "version", "INVALID_VERSION"),
        (3, "colour", "UNKNOWN_FIELD"),
        (4, "id", "MISSING_FIELD"), (4, "payload", "INVALID_PAYLOAD"),
        (5, None, "INVALID_EVENT"),
    }
    assert all(error.message for error in errors)


@pytest.mark.parametrize(("raw", "code"), [
    (b"\xff\xfe{}", "INVALID_TEXT"),
    (b'{"object": "Asset", "id": 1, "operation": "upsert", "version": NaN}', "INVALID_JSON"),
    (b'{"object": "Asset", "object": "Asset", "id": 1, "operation": "upsert"}', "INVALID_JSON"),
    (b"[1, 2]", "INVALID_BODY"),
    (b'{"events": []}', "NO_EVENTS"),
    (b'{"events": {}}', "INVALID_BODY"),
    (b'{"events": [], "extra": 1}', "UNKNOWN_FIELD"),
    (b"[" * 100_000, "INVALID_JSON"),
])
def test_a_bad_body_is_one_problem(raw: bytes, code: str) -> None:
    errors = errors_of(raw)

    assert [error.code for error in errors] == [code]
    assert errors[0].index is None


def test_invalid_text_is_refused_wherever_it_is() -> None:
    lone_surrogate = '"\\ud800"'
    raw = ('{"events": [{"object": "Asset", "id": 1, "operation": "upsert", '
           f'"payload": {{"note": {lone_surrogate}}}}}, '
           '{"object": "Asset", "id": "1\\u0000", "operation": "upsert"}, '
           f'{{"object": {lone_surrogate}, "id": 2, "operation": "upsert"}}]}}').encode()

    errors = errors_of(raw)

    assert {(error.index, error.field, error.code) for error in errors} == {
        (0, "payload", "INVALID_TEXT"), (1, "id", "INVALID_ID"), (2, "object", "INVALID_TEXT"),
    }


def test_limits_on_count_payload_and_numbers() -> None:
    too_many = {"events": [{"object": "Asset", "id": 1, "operation": "upsert"}]
                * (MAX_EVENTS + 1)}
    big = {"object": "Asset", "id": 1, "operation": "upsert", "payload": {"x": "y" * 40_000}}
    huge_id = {"object": "Asset", "id": 2**63, "operation": "upsert"}
    flag = {"object": "Asset", "id": True, "operation": "upsert", "version": False}

    assert [e.code for e in errors_of(body(too_many))] == ["TOO_MANY_EVENTS"]
    assert [e.code for e in errors_of(body(big))] == ["PAYLOAD_TOO_LARGE"]
    assert [e.code for e in errors_of(body(huge_id))] == ["INVALID_ID"]
    assert sorted(e.code for e in errors_of(body(flag))) == ["INVALID_ID", "INVALID_VERSION"]
    assert len(parse_events(body({"events": too_many["events"][:MAX_EVENTS]}))) == MAX_EVENTS


def test_a_payload_is_measured_as_table_storage_measures_text() -> None:
    """In UTF-16 code units: a character outside the Basic Multilingual Plane is two."""
    def payload(text: str) -> bytes:
        return body({"object": "Asset", "id": 1, "operation": "upsert", "payload": {"t": text}})

    assert [e.code for e in errors_of(payload("\U0001F600" * 16_000))] == ["PAYLOAD_TOO_LARGE"]
    assert isinstance(parse_events(payload("\U0001F600" * 14_000))[0], Event)
    assert isinstance(parse_events(payload("\u00e9" * 29_000))[0], Event)
