"""What `POST /api/bulk-loads` answers before a load starts: parsed body or problem+json."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.bulkload.request import LoadRequest, LoadRequestInvalid, validate_load_request
from shared.bulkload.store import LoadClaim
from shared.problems import Problem, problem


def parse_load_request(
    body: bytes, content_length: str | None, max_body_bytes: int, instance: str
) -> LoadRequest | Problem:
    """The validated request, or the problem to answer (413 too large, 400 invalid)."""
    declared = int(content_length) if content_length and content_length.isdigit() else 0
    size = max(declared, len(body))
    if size > max_body_bytes:
        return problem(
            413, "BODY_TOO_LARGE", "Bulk load request too large",
            f"the body is {size} bytes; at most {max_body_bytes} are accepted "
            "(BULK_LOAD_MAX_BODY_BYTES): split the load into several requests",
            instance,
        )
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return problem(400, "MALFORMED_JSON", "Bulk load request is not JSON",
                       f"the body is not valid JSON: {error}", instance)
    except RecursionError:  # nesting deeper than the parser's stack, never a real load
        return problem(400, "MALFORMED_JSON", "Bulk load request is not JSON",
                       "the body nests JSON arrays or objects too deeply", instance)
    try:
        return validate_load_request(parsed)
    except LoadRequestInvalid as invalid:
        return problem(
            400, "INVALID_RECORDS", "Bulk load request is invalid",
            f"{len(invalid.problems)} problem(s) found; nothing was started. Fix every "
            "listed record and post again.",
            instance, errors=[p.to_json() for p in invalid.problems],
        )


# Longer than staging the largest accepted body takes: a request that claimed a load id
# this long ago and has not started its load is gone (crashed, host recycled).
ABANDONED_CLAIM_AFTER = timedelta(minutes=10)


def refused_claim(
    claim: LoadClaim | None, now: datetime, load_id: str, instance: str
) -> Problem | None:
    """Why a load id that is claimed but has no orchestration cannot start now, or None
    when the claim was abandoned before its load started and may be taken over."""
    if claim is not None and claim.started:
        return problem(
            409, "LOAD_ID_USED", "Bulk load id already used",
            f"load {load_id!r} ran and its history was purged; a load id loads once, "
            "ever: post the records with a new loadId", instance,
        )
    if claim is None or now - claim.written_at < ABANDONED_CLAIM_AFTER:
        return problem(
            409, "LOAD_STARTING", "Bulk load is being started",
            f"another request is starting load {load_id!r}; post again in a few seconds "
            "to get its status", instance,
        )
    return None


def new_load_id() -> str:
    return uuid.uuid4().hex


def new_run_prefix(load_id: str) -> str:
    # A fresh folder per request: a request that loses the race for the load id never
    # overwrites the files of the run that won.
    return f"{load_id}/{uuid.uuid4().hex[:12]}"


def existing_load_body(status: Any, links: dict[str, Any]) -> dict[str, Any]:
    """The body answered when a load id is posted again: its status, not a second load."""
    return {
        **links,
        "runtimeStatus": status.runtime_status.name if status.runtime_status else None,
        "customStatus": status.custom_status,
        "output": status.output,
        "createdTime": status.created_time.isoformat() if status.created_time else None,
        "lastUpdatedTime": (status.last_updated_time.isoformat()
                            if status.last_updated_time else None),
    }
