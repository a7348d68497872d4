"""Parsing a posted batch body (shared/batch/records.py)."""

from __future__ import annotations

import pytest

from shared.batch.records import InputRejected, parse_records


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson",
                                          "text/csv"])
@pytest.mark.parametrize("body", [b"", b"\r\n  \n"])
def test_an_empty_body_is_refused_as_empty(body: bytes, content_type: str) -> None:
    refused = parse_records(body, content_type)

    assert isinstance(refused, InputRejected)
    assert (refused.code, refused.status) == ("NO_RECORDS", 400)
    assert refused.detail.startswith("the body is empty")


def test_a_body_with_records_is_parsed() -> None:
    assert parse_records(b'[{"n": 1}]', "application/json") == [{"n": 1}]
