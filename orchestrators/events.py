"""The event queue (seed 001): post events, one drain at a time processes them.

    POST /api/events -> validate every event (400 problem+json naming each bad one, nothing
        stored) -> store them collapsed per object and id -> wake the drain -> 202
    event_drain orchestration, instance `event-drain` (the lock): batch after batch, each
        run through an instance of the batch job `asset-events` as a sub-orchestration,
        two activities a batch (event_drain_pipeline_2.py, shared/events/drain_steps.py),
        continue_as_new every few batches, finish only when nothing is due and nothing was
        posted since its last look (shared/events/finish.py)
    timer %EVENTS_SAFETY_SCHEDULE%: start the drain when events are due and none runs
    GET /api/events: depth (counted, shared/events/depth.py), oldest event (from one page
        of rows, or every row with ?exact=true), the drain, totals
    POST /api/events/drain: start a drain on demand, under the same lock
    GET /api/events/dead-letters, POST .../replay: the events that failed on every attempt,
        and putting them back into the queue (shared/events/dead_letters.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrators.event_drain_pipeline_1 import drain_pipeline_1
from orchestrators.event_drain_pipeline_2 import drain_pipeline_2
from orchestrators.event_drain_steps import Steps
from orchestrators.http import (
    CommittedBeforeFailure,
    answers_failures,
    problem_response,
    request_path,
)
from shared.answer_json import answer_text, camel_keys
from shared.config import AppSettings, app_settings
from shared.crash_points import crash_point
from shared.durable import read_status
from shared.events.collapse import collapse
from shared.events.dead_letters import (
    MAX_LETTERS,
    LetterSelection,
    list_dead_letters,
    parse_selection,
    replay_dead_letters,
)
from shared.events.messages import PIPELINE, DrainRun
from shared.events.queue import EventQueue, PartlyStored
from shared.events.status import LOOK_LIMIT
from shared.events.tables import event_queue
from shared.events.validation import EventError, parse_events
from shared.events.wake import (
    DRAIN_INSTANCE_ID,
    Wake,
    drain_is_busy,
    new_drain_run,
    wake_drain,
)
from shared.problems import problem

blueprint = df.Blueprint()
log = logging.getLogger(__name__)

# Crash point (shared/crash_points.py): a post's events are stored, the drain not woken.
EVENTS_STORED = "events.post.after_store"


# -- the drain --------------------------------------------------------------------------


@blueprint.orchestration_trigger(context_name="context")
def event_drain(context: df.DurableOrchestrationContext) -> Steps:
    """Drain the queue, one batch at a time; only one drain runs (its instance id).

    1. take the due events and stage them (references kept beside the instance, never in
       history) as an instance of the batch job `asset-events`, its id derived from this
       run and batch, so a replay never starts a second one
    2. process the batch: run that instance as a sub-orchestration
    3. settle it: the instance's per-record failures become the events' outcomes; remove
       what finished if unchanged, retry failures later, dead-letter those out of attempts;
       after a short batch, finish if nothing is due and nothing was posted since the
       look (finish.py); unless finished, take and stage the next batch (step 1)
    4. after `batches_per_generation` batches: continue_as_new, history stays small
    5. nothing due at a take: finish, unless something was posted since the last look

    A drain started before pipeline 2 (its input says so) replays pipeline 1's steps
    until its next generation.
    """
    run = DrainRun.from_json(context.get_input())
    if run.pipeline < PIPELINE:
        return (yield from drain_pipeline_1(context, run))
    return (yield from drain_pipeline_2(context, run))


# -- waking it: safety timer, on demand --------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _wake_or_defer(client: df.DurableOrchestrationClient, queue: EventQueue,
                         settings: AppSettings, now: datetime, after: str) -> Wake:
    """Wake the drain for events already queued; DEFERRED when waking fails."""
    try:
        return await wake_drain(client, queue.state, lambda: new_drain_run(settings.events, now),
                                now)
    except Exception:  # the events are queued; the safety timer starts the drain
        log.exception("event queue: waking the drain after %s failed; the safety timer will",
                      after)
        return Wake.DEFERRED


@blueprint.timer_trigger(schedule="%EVENTS_SAFETY_SCHEDULE%", arg_name="timer",
                         run_on_startup=False)
@blueprint.durable_client_input(client_name="client")
async def event_drain_safety_tick(timer: func.TimerRequest,
                                  client: df.DurableOrchestrationClient) -> None:
    """Start the drain when events are due and none runs: the bound on a lost wake-up."""
    settings = app_settings()
    queue = event_queue(settings)
    now = _utc_now()
    if not await asyncio.to_thread(queue.has_due_events, now):
        # Nothing due: a moment an empty queue's depth counters can be calibrated.
        await asyncio.to_thread(queue.calibrate_depth)
        return
    if await drain_is_busy(client):
        return
    wake = await wake_drain(client, queue.state, lambda: new_drain_run(settings.events, now),
                            now)
    log.warning("event queue: events were due and no drain ran; safety timer: drain %s",
                wake.value)


@blueprint.route(route="events/drain", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def events_drain_now(req: func.HttpRequest,
                           client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a drain now, under the same lock: 202 started, 409 when one runs."""
    settings = app_settings()
    queue = event_queue(settings)
    now = _utc_now()
    wake = await wake_drain(client, queue.state, lambda: new_drain_run(settings.events, now),
                            now)
    if wake is Wake.STARTED:
        return func.HttpResponse(
            answer_text({"instanceId": DRAIN_INSTANCE_ID, "drain": wake.value,
                        "status": "/api/events"}),
            status_code=202, mimetype="application/json")
    if wake is Wake.RUNNING:
        return problem_response(problem(
            409, "DRAIN_RUNNING", "Drain not started",
            f"a drain ({DRAIN_INSTANCE_ID}) is running; it takes every due event before it "
            "finishes", request_path(req)))
    return problem_response(problem(
        409, "DRAIN_FINISHING", "Drain not started",
        "the last drain is still completing; the safety timer starts the next one, or "
        "try again shortly", request_path(req)), headers={"Retry-After": "5"})


# -- HTTP: post, status ----------------------------------------------------------------


@blueprint.route(route="events", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def events_post(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Accept one event or {"events": [...]}: stored before the 202, the drain woken."""
    settings = app_settings()
    instance = request_path(req)
    body = req.get_body()
    if len(body) > settings.events.max_body_bytes:
        return problem_response(problem(
            413, "BODY_TOO_LARGE", "Request body too large",
            f"the body has {len(body)} bytes; at most {settings.events.max_body_bytes} "
            "(EVENTS_MAX_BODY_BYTES): post the events in several requests", instance))
    parsed = parse_events(body)
    errors = [item for item in parsed if isinstance(item, EventError)]
    if errors:
        return problem_response(_invalid_events(errors, instance))
    events = [item for item in parsed if not isinstance(item, EventError)]
    queue = event_queue(settings)
    now = _utc_now()
    try:
        counts = await asyncio.to_thread(queue.store, collapse(events), now)
    except Exception as error:  # storage failed, not the caller: nothing is acknowledged
        log.exception("event queue: storing %d events failed", len(events))
        cause = error.__cause__ if isinstance(error, PartlyStored) else error
        kept = (f"{error.kept} of {error.total} events (after collapsing) were stored, the "
                "others may or may not be" if isinstance(error, PartlyStored)
                else "some may be stored")
        return problem_response(problem(
            503, "STORAGE_UNAVAILABLE", "Events not stored",
            f"storing the events failed ({type(cause).__name__}); {kept}: post them all "
            "again, which is safe (an event collapses with itself)", instance),
            headers={"Retry-After": "10"})
    crash_point(EVENTS_STORED)
    wake = (await _wake_or_defer(client, queue, settings, now, "a post")).value
    try:
        depth, exact = await asyncio.to_thread(_depth, queue)
    except Exception as error:
        raise CommittedBeforeFailure(
            f"storing the {len(events)} events",
            "The events are kept and the drain takes them; posting them again is safe (an "
            "event collapses with itself)") from error
    return func.HttpResponse(answer_text({
        "accepted": len(events), "stored": counts.stored,
        "superseded": len(events) - counts.stored, "queueDepth": depth,
        "queueDepthExact": exact, "drain": wake, "status": "/api/events",
    }), status_code=202, mimetype="application/json")


def _depth(queue: EventQueue) -> tuple[int, bool]:
    """The counted depth, or (before the counters are calibrated) one page's count."""
    counted = queue.counted_depth()
    if counted is not None:
        return counted, True
    looked = queue.depth_up_to()
    return looked.depth, looked.complete


def _invalid_events(errors: list[EventError], instance: str) -> Any:
    whole_body = [error for error in errors if error.index is None and error.field is None]
    if whole_body:
        return problem(400, whole_body[0].code, "Invalid events", whole_body[0].message,
                       instance, errors=[error.to_json() for error in errors])
    bad = sorted({error.index for error in errors if error.index is not None})
    detail = (f"{len(bad)} events are invalid (indexes {', '.join(map(str, bad[:20]))}"
              f"{', ...' if len(bad) > 20 else ''}); nothing was stored" if bad else
              f"{errors[0].message}; nothing was stored")
    return problem(400, "INVALID_EVENTS", "Invalid events", detail, instance,
                   errors=[error.to_json() for error in errors])


@blueprint.route(route="events", methods=["GET"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def events_status(req: func.HttpRequest,
                        client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The depth from the counters; due, retrying and the oldest event as one page of the
    rows shows them (`complete` says whether that was every row); `?exact=true` reads every
    row, a request per 1,000."""
    exact = req.params.get("exact", "false")
    if exact not in ("true", "false"):
        return problem_response(problem(
            400, "INVALID_QUERY", "Invalid query parameter",
            f"exact must be true or false, got {exact[:40]!r}", request_path(req)))
    settings = app_settings()
    queue = event_queue(settings)
    now = _utc_now()
    snapshot = await asyncio.to_thread(queue.snapshot, now,
                                       None if exact == "true" else LOOK_LIMIT)
    counted = await asyncio.to_thread(queue.counted_depth)
    if counted is None and snapshot.complete and snapshot.depth == 0:
        # An empty queue: from now on its depth is counted, not looked up.
        counted = 0 if await asyncio.to_thread(queue.calibrate_depth) else None
    signal = await asyncio.to_thread(queue.state.read_signal)
    totals = await asyncio.to_thread(queue.state.read_totals)
    status = await read_status(client, DRAIN_INSTANCE_ID)
    runtime = getattr(status, "runtime_status", None) if status else None
    oldest = snapshot.oldest_enqueued_at
    body = {
        "queue": {
            "depth": snapshot.depth if counted is None else counted,
            "depthExact": counted is not None or snapshot.complete,
            "due": snapshot.due, "retrying": snapshot.retrying,
            "oldestEventAgeSeconds": (now - oldest).total_seconds() if oldest else None,
            "complete": snapshot.complete,
        },
        "drain": {
            "instanceId": DRAIN_INSTANCE_ID,
            "runtimeStatus": getattr(runtime, "value", runtime),
            "customStatus": camel_keys(status.custom_status) if status else None,
            "signal": signal.state.value, "posts": signal.posts,
            "idleSince": signal.idle_since, "lastPostAt": signal.last_post_at,
        },
        "totals": {"processed": totals.processed, "deadLettered": totals.dead_lettered,
                   "superseded": totals.superseded},
        "safetySchedule": settings.events.safety_schedule,
    }
    return func.HttpResponse(answer_text(body), mimetype="application/json")


# -- dead letters: list, replay -----------------------------------------------------------


@blueprint.route(route="events/dead-letters", methods=["GET"])
@answers_failures
def events_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    """The events that failed on every attempt (`?object=Asset&id=17&top=100`), each with
    its last error; `complete` false: more letters wait than `top`."""
    instance = request_path(req)
    top_text = req.params.get("top", str(MAX_LETTERS))
    if not top_text.isdigit() or not 0 < int(top_text) <= MAX_LETTERS:
        return problem_response(problem(
            400, "INVALID_QUERY", "Invalid query parameter",
            f"top must be a whole number from 1 to {MAX_LETTERS}, got {top_text[:40]!r}",
            instance))
    chosen = LetterSelection("") if "object" not in req.params and "id" not in req.params \
        else parse_selection({**({"object": req.params["object"]} if "object" in req.params
                                 else {}),
                              **({"ids": [req.params["id"]]} if "id" in req.params else {})})
    if isinstance(chosen, EventError):
        return problem_response(problem(
            400, "INVALID_QUERY", "Invalid query parameter",
            f"{chosen.field or 'query'}: {chosen.message}", instance))
    letters, complete = list_dead_letters(event_queue(app_settings()), chosen.object or None,
                                          chosen.ids, int(top_text))
    return func.HttpResponse(answer_text({
        "deadLetters": [letter.to_answer() for letter in letters], "complete": complete,
        "replay": "/api/events/dead-letters/replay"}), mimetype="application/json")


@blueprint.route(route="events/dead-letters/replay", methods=["POST"])
@blueprint.durable_client_input(client_name="client")
@answers_failures
async def events_dead_letters_replay(req: func.HttpRequest,
                                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Put dead letters back into the queue: `{"object": "Asset", "ids": [17, ...]}` (ids
    optional: every letter of the object, up to 1,000 a request); the drain is woken."""
    instance = request_path(req)
    try:
        document = json.loads(req.get_body().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return problem_response(problem(
            400, "INVALID_JSON", "Invalid body", "the body is not UTF-8 JSON", instance))
    selection = parse_selection(document)
    if isinstance(selection, EventError):
        return problem_response(problem(400, selection.code, "Invalid replay request",
                                        selection.message, instance,
                                        errors=[selection.to_json()]))
    settings = app_settings()
    queue = event_queue(settings)
    now = _utc_now()
    replayed = await asyncio.to_thread(replay_dead_letters, queue, selection.object,
                                       selection.ids, now)
    wake = Wake.RUNNING.value
    if replayed.replayed:
        wake = (await _wake_or_defer(client, queue, settings, now, "a replay")).value
    return func.HttpResponse(answer_text({
        "replayed": replayed.replayed, "superseded": replayed.superseded,
        "lettersRemoved": replayed.letters, "complete": replayed.complete,
        "drain": wake, "status": "/api/events"}), status_code=202, mimetype="application/json")
