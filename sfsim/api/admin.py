"""The simulator's own endpoints under `/_sim/` (no login, no faults): settings, reset,
records, schema, token expiry, the request log and API usage. Tests drive the org here."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from sfsim.api.shapes import BadRequest, json_body, json_response
from sfsim.org import now_text
from sfsim.record_values import RecordError
from sfsim.schema import ObjectDef
from sfsim.standard import seed_standard_records

if TYPE_CHECKING:
    from sfsim.app import Simulator


def config(sim: Simulator, request: Request) -> Response:
    if request.method == "PATCH":
        try:
            changed = json_body(request, dict)
            fixed = [name for name in changed if name in sim.settings.START_ONLY]
            if fixed:
                raise ValueError(f"{', '.join(fixed)} is chosen at start (--state, "
                                 "SFSIM_STATE) and cannot be changed at run time")
            with sim.lock:
                sim.settings.update(changed)
                if "seed" in changed:
                    sim.random.seed(sim.settings.seed)
            if "username" in changed:
                # The integration user's record follows its new username.
                seed_standard_records(sim.org, sim.settings.username)
        except (ValueError, BadRequest) as error:
            return json_response({"error": str(error)}, 400)
    return json_response(sim.settings.to_json())


def reset(sim: Simulator, request: Request) -> Response:
    """Empty the org (records, jobs, API usage, request log) and restore the settings
    it started with (faults off) and its built-in records. Issued tokens stay valid."""
    sim.jobs.reset()
    sim.query_jobs.reset()
    sim.org.reset()
    with sim.lock:
        sim.api_calls = 0
        sim.query_cursors.clear()
        sim.request_log.clear()
        for name, value in vars(copy.deepcopy(sim.initial_settings)).items():
            setattr(sim.settings, name, value)
        sim.random.seed(sim.settings.seed)
    seed_standard_records(sim.org, sim.settings.username)
    return json_response({"reset": True})


def records(sim: Simulator, request: Request, sobject: str) -> Response:
    obj = sim.org.object_named(sobject)
    if obj is None:
        return json_response({"error": f"unknown object {sobject}"}, 404)
    if request.method == "POST":
        body = json_body(request, list)
        created = []
        for record in body:
            try:
                created.append(sim.org.write(obj.name, "insert", record).id)
            except RecordError as error:
                return json_response({"error": str(error), "created": created}, 400)
        return json_response({"ids": created}, 201)
    return json_response(list(sim.org.all_records(obj.name)))


def objects(sim: Simulator, request: Request) -> Response:
    return json_response([o.to_json() for o in sim.org.objects.values()])


def define_object(sim: Simulator, request: Request, sobject: str) -> Response:
    try:
        definition = ObjectDef.from_json({**json_body(request, dict), "name": sobject})
    except (TypeError, ValueError, KeyError, BadRequest) as error:
        return json_response({"error": str(error)}, 400)
    sim.org.define_object(definition)
    return json_response(definition.to_json())


def expire_tokens(sim: Simulator, request: Request) -> Response:
    with sim.lock:
        count = len(sim.tokens)
        sim.tokens = dict.fromkeys(sim.tokens, 0.0)
    return json_response({"expired": count})


def request_log(sim: Simulator, request: Request) -> Response:
    if request.method == "DELETE":
        sim.request_log.clear()
    return json_response(list(sim.request_log))


def usage(sim: Simulator, request: Request) -> Response:
    return json_response({"api_calls": sim.api_calls, "jobs": len(sim.jobs.jobs),
                          "time": now_text()})
