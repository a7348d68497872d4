"""What the bulk-load endpoints do before the orchestration runs: parse and check what
was posted (or answer problem+json), stage a new load."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

from azure.storage.blob import BlobServiceClient

from shared.bulkload.fingerprint import (
    LevelFingerprint,
    fingerprint_difference,
    request_fingerprint,
)
from shared.bulkload.messages import LoadInput
from shared.bulkload.request import LoadRequest, LoadRequestInvalid, RecordProblem
from shared.bulkload.required_fields import missing_required_fields
from shared.bulkload.retry import inherit_id_maps
from shared.bulkload.staged import (
    EncodedLevel,
    EncodedRequest,
    body_digest,
    posted_fingerprint,
    stage_encoded,
    stage_posted,
)
from shared.bulkload.store import LoadStore
from shared.bulkload.validation import no_lone_surrogates, validate_load_request
from shared.config import BulkLoadSettings
from shared.cyclic_gc import collection_paused
from shared.problems import Problem, problem

MAX_CANCEL_REASON = 500
# The first look at a level's closed jobs: most small jobs have ended by then.
FIRST_POLL_SECONDS = 0.5


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
    if not body.strip():
        # What curl sends for `--data @FILE` when FILE is missing: say so, not a parser's offset.
        return problem(400, "MALFORMED_JSON", "Bulk load request is not JSON",
                       "the body is empty: send the load request, a JSON object", instance)
    with collection_paused():
        return _parsed_load_request(body, instance)


def _parsed_load_request(body: bytes, instance: str) -> LoadRequest | Problem:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return problem(400, "MALFORMED_JSON", "Bulk load request is not JSON",
                       f"the body is not valid JSON: {error}", instance)
    except RecursionError:  # nesting deeper than the parser's stack, never a real load
        return problem(400, "MALFORMED_JSON", "Bulk load request is not JSON",
                       "the body nests JSON arrays or objects too deeply", instance)
    try:
        return validate_load_request(parsed, text_checked=no_lone_surrogates(body))
    except LoadRequestInvalid as invalid:
        return invalid_records(invalid.problems, instance)


def invalid_records(problems: Sequence[RecordProblem], instance: str) -> Problem:
    return problem(
        400, "INVALID_RECORDS", "Bulk load request is invalid",
        f"{len(problems)} problem(s) found; nothing was started. Fix every listed record "
        "and post again.",
        instance, errors=[p.to_json() for p in problems],
    )


def check_required_fields(request: LoadRequest, required: Mapping[str, frozenset[str]],
                          instance: str) -> Problem | None:
    """400 naming every record that leaves a field required on create empty, or None."""
    missing = missing_required_fields(request, required)
    return invalid_records(missing, instance) if missing else None


def new_load_id() -> str:
    return uuid.uuid4().hex


def new_run_prefix(load_id: str) -> str:
    # A fresh folder per request: a request that loses the race for the load id never
    # overwrites the files of the run that won.
    return f"{load_id}/{uuid.uuid4().hex[:12]}"


def stage_new_load(
    service: BlobServiceClient, settings: BulkLoadSettings, load_id: str, request: LoadRequest,
    encoded: EncodedRequest, origin: LoadInput | None = None,
) -> LoadInput:
    """Stage the encoded records in a fresh run folder; the orchestration's input names it.
    A retry of `origin` inherits the Salesforce ids of the parents that load loaded."""
    store = LoadStore.for_load(service, settings.container, new_run_prefix(load_id))
    stage_encoded(store, request.levels, encoded)
    if origin is not None:
        inherit_id_maps(LoadStore.for_load(service, settings.container, origin.prefix), store,
                        request.levels)
    return _load_input(settings, load_id, store.prefix, request, fingerprint=encoded.fingerprint,
                       origin=origin.load_id if origin is not None else None)


def stage_posted_load(
    service: BlobServiceClient, settings: BulkLoadSettings, load_id: str, request: LoadRequest,
    body: bytes, first_level: EncodedLevel,
) -> LoadInput:
    """Keep the body as posted and the first level's records in a fresh run folder (the
    other levels' records are encoded from the body while the first level loads)."""
    store = LoadStore.for_load(service, settings.container, new_run_prefix(load_id))
    stage_posted(store, request.levels, body, first_level)
    return _load_input(settings, load_id, store.prefix, request, body_digest=body_digest(body))


def _load_input(settings: BulkLoadSettings, load_id: str, prefix: str, request: LoadRequest,
                fingerprint: tuple[LevelFingerprint, ...] = (), origin: str | None = None,
                body_digest: str | None = None) -> LoadInput:
    return LoadInput(
        load_id, prefix, tuple(request.levels),
        tuple(len(records) for records in request.records),
        poll_interval=settings.poll_interval, max_wait=settings.max_wait,
        upload_limit=settings.upload_limit_bytes,
        activity_attempts=settings.activity_attempts,
        activity_retry_delay=settings.activity_retry_delay,
        first_poll_delay=min(FIRST_POLL_SECONDS, settings.poll_interval),
        fingerprint=fingerprint,
        origin=origin,
        prepare_children=True,
        combined_steps=True,
        submit_ahead=True,
        predicted_polls=True,
        body_digest=body_digest,
    )


def difference_from_load(loaded: LoadInput, request: LoadRequest, digest: str | None,
                         store: LoadStore) -> str | None:
    """How the posted records differ from the load's (`store` is its run folder), or None.
    The same bytes as the load's body are the same records; other bytes are compared
    record by record, with the body kept (`posted_fingerprint`) or with the fingerprint in
    the input of a load started before bodies were kept."""
    if loaded.body_digest is not None and digest == loaded.body_digest:
        return None
    if loaded.fingerprint:
        earlier = loaded.fingerprint
    elif loaded.body_digest is not None:
        earlier = posted_fingerprint(store)
    else:
        return None
    return fingerprint_difference(request_fingerprint(request), earlier)


def parse_cancel_request(body: bytes) -> tuple[str | None, str | None]:
    """(reason, None) from an empty body or {"reason": "..."}; (None, problem) otherwise."""
    if not body.strip():
        return None, None
    try:
        parsed = json.loads(body)
    except ValueError as error:
        return None, f"the body is not JSON ({error}); send {{\"reason\": \"...\"}} or nothing"
    except RecursionError:
        return None, 'the body nests JSON too deeply; send {"reason": "..."} or nothing'
    if not isinstance(parsed, dict) or not isinstance(parsed.get("reason", ""), str):
        return None, 'the body must be an object whose "reason" is text'
    if len(parsed.get("reason", "")) > MAX_CANCEL_REASON:
        # The reason goes into history and the summary: keep both small.
        return None, f'"reason" is longer than {MAX_CANCEL_REASON} characters'
    return parsed.get("reason") or None, None
