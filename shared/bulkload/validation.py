"""`validate_load_request`: the body of `POST /api/bulk-loads`, checked whole before
anything is started, in the seed's shape or the general one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.bulkload.general_shape import general_shape
from shared.bulkload.request import (
    LOAD_ID_PATTERN,
    RESERVED_LOAD_ID_PREFIX,
    LoadRequest,
    LoadRequestInvalid,
    RecordProblem,
    escape_pointer,
    invalid_text_pointers,
)
from shared.bulkload.seed_shape import seed_shape

# A \u escape of a surrogate code point (one half of a pair, or alone), in JSON text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def validate_load_request(body: Any, text_checked: bool = False) -> LoadRequest:
    """The request as levels and records; raises LoadRequestInvalid listing every problem.
    With `text_checked`, the caller knows every key and string of the body is valid text
    (`no_lone_surrogates` of the raw body), and it is not checked again."""
    problems: list[RecordProblem] = []
    if not isinstance(body, dict):
        raise LoadRequestInvalid([RecordProblem(
            "", "WRONG_TYPE", "the body must be a JSON object with `accounts` or `levels`"
        )])
    invalid_text = [] if text_checked else invalid_text_pointers(body)
    if invalid_text:
        raise LoadRequestInvalid([RecordProblem(
            pointer, "INVALID_TEXT",
            "not valid Unicode text (a lone surrogate such as \\ud800): it cannot be "
            "encoded as UTF-8, which Salesforce reads") for pointer in invalid_text])
    load_id = _load_id(body, problems)
    if ("accounts" in body) == ("levels" in body):
        problems.append(RecordProblem(
            "", "SHAPE_UNKNOWN",
            "give either `accounts` (accounts with their contacts) or `levels` "
            "(a hierarchy of objects), not both and not neither",
        ))
        raise LoadRequestInvalid(problems)
    unknown = sorted(set(body) - {"loadId", "accounts", "levels"})
    for key in unknown:
        problems.append(RecordProblem(
            f"/{escape_pointer(key)}", "UNKNOWN_FIELD",
            f"unknown member {key!r}; expected loadId and accounts or levels",
        ))
    if "accounts" in body:
        request = seed_shape(body["accounts"], load_id, problems)
    else:
        request = general_shape(body["levels"], load_id, problems)
    if problems:
        raise LoadRequestInvalid(problems)
    return request


def no_lone_surrogates(raw: bytes) -> bool:
    """True when the JSON text `raw` cannot parse into a lone surrogate: it is UTF-8 (which
    cannot encode one) and escapes none (no \\uD800-\\uDFFF). A scan of the bytes, where
    looking for them in the parsed body means encoding all of it; False only means that
    the parsed body must be looked at."""
    return (json.detect_encoding(raw) in ("utf-8", "utf-8-sig")
            and _SURROGATE_ESCAPE.search(raw) is None)


def _load_id(body: Mapping[str, Any], problems: list[RecordProblem]) -> str | None:
    load_id = body.get("loadId")
    if load_id is None:
        return None
    if not isinstance(load_id, str) or not LOAD_ID_PATTERN.fullmatch(load_id):
        problems.append(RecordProblem(
            "/loadId", "INVALID_LOAD_ID",
            "loadId must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit",
        ))
        return None
    if load_id.lower().startswith(RESERVED_LOAD_ID_PREFIX):
        # `sync-<job>` is the fixed instance id, and so the lock, of a sync job: a load
        # started under it would be taken for a run, terminated or replaced by a tick.
        problems.append(RecordProblem(
            "/loadId", "INVALID_LOAD_ID",
            f"loadIds starting with {RESERVED_LOAD_ID_PREFIX!r} are reserved for the sync "
            "jobs' runs; choose another loadId",
        ))
        return None
    return load_id
