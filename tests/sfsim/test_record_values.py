"""The values a write stores as they came are those the converters would leave as they are."""

from __future__ import annotations

from sfsim import record_values
from sfsim.schema import FIELD_TYPES, FLOAT_TYPES, PLAIN_TEXT_TYPES


def test_types_stored_as_they_came_are_those_no_converter_changes() -> None:
    converters = record_values._CONVERTERS
    assert frozenset(FIELD_TYPES) - set(converters) - {"email"} == PLAIN_TEXT_TYPES
    assert {kind for kind, convert in converters.items()
            if convert is record_values._to_float} == FLOAT_TYPES
