"""CSV cells a spreadsheet opens as text, never as a formula (OWASP "CSV Injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or their
full-width forms, which some spreadsheets also read as formula starts) is prefixed with a
single quote, which spreadsheets show as text and do not display. Numbers such as `-12.5`
or `+3` stay as they are. The csv writer quotes cells holding quotes and delimiters, so the
prefixed cell cannot break out of its field.

defusedcsv does not cover tab and carriage return and rewrites `|` inside cells, hence this.
"""

from __future__ import annotations

import re

FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: str) -> str:
    """`value` as a cell no spreadsheet evaluates."""
    if value and value[0] in FORMULA_STARTS and not NUMBER.fullmatch(value):
        return "'" + value
    return value
