"""The on-complete hook of an instance: run until one attempt ended, then never again.

    {job}/{instance}/on-complete/attempts.json  written (ETag-guarded) before each attempt:
                                                how many attempts began
    {job}/{instance}/on-complete/outcome.json   created once an attempt returned or raised:
                                                whether it failed (failedOnCompletePhase)

The finish activity runs at least once (the Durable backend redelivers it after a crash).
Semantics: at least once, with a marker the hook can read. Once an attempt of the hook has
returned (or raised), a redelivered finish reuses its recorded outcome and does not call
the hook again. Only a crash while the hook runs (after its attempt was counted, before its
outcome was written) calls it again; the hook then sees `onCompleteAttempt` above 1 in the
result it gets, and can check what its earlier attempt did. A hook that is idempotent, or
that checks that key, takes effect exactly once per instance.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from shared.batch.job import CompleteHook
from shared.batch.store import BlobStore, InstanceFolder
from shared.storage.tables import ConcurrentWrite

log = logging.getLogger(__name__)

ATTEMPT_KEY = "onCompleteAttempt"


def attempts_blob(folder: InstanceFolder) -> str:
    return folder.prefix + "on-complete/attempts.json"


def outcome_blob(folder: InstanceFolder) -> str:
    return folder.prefix + "on-complete/outcome.json"


def run_on_complete_once(store: BlobStore, folder: InstanceFolder, hook: CompleteHook,
                         result: Mapping[str, Any]) -> bool:
    """Call `hook` with `result` (and its attempt number) unless an earlier attempt ended;
    True when the attempt that ended raised (the instance's failedOnCompletePhase)."""
    recorded = store.read(outcome_blob(folder))
    if recorded is not None:
        return bool(json.loads(recorded[0])["failed"])
    counted = store.read(attempts_blob(folder))
    attempt = (json.loads(counted[0])["attempts"] if counted else 0) + 1
    # A lost race means another delivery of the finish runs the hook now: let this one fail
    # and be retried, it will find that delivery's outcome.
    store.write(attempts_blob(folder), json.dumps({"attempts": attempt}).encode(),
                etag=counted[1] if counted else None)
    failed = False
    try:
        hook({**result, ATTEMPT_KEY: attempt})
    except Exception:  # reported as failedOnCompletePhase; the traceback goes to the log
        log.exception("batch %s %s: the on-complete hook failed", folder.job,
                      folder.instance_id)
        failed = True
    try:
        store.write(outcome_blob(folder),
                    json.dumps({"failed": failed, "attempt": attempt}).encode(), etag=None)
    except ConcurrentWrite:
        stored = store.read(outcome_blob(folder))
        if stored is not None:
            return bool(json.loads(stored[0])["failed"])
    return failed
