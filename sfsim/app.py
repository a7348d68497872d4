"""The simulator's HTTP API (a Werkzeug WSGI app): the routing table and the dispatcher.

Each API family answers in its own module under `sfsim.api` (oauth, rest, records, query,
sobject_collections, bulk_ingest, bulk_query, admin); this module holds the org's state,
maps URLs to those handlers, and applies what every call goes through: injected faults,
the session check, the daily API limit, and Salesforce's error shapes.
"""

from __future__ import annotations

import collections
import copy
import enum
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sfsim import soql, state
from sfsim.api import (
    admin,
    bulk_ingest,
    bulk_query,
    oauth,
    query,
    records,
    rest,
    sobject_collections,
)
from sfsim.api.shapes import API_VERSIONS, BadRequest, error_response
from sfsim.bulk_jobs import JobError
from sfsim.ingest import IngestJobs
from sfsim.org import Org
from sfsim.query_jobs import QueryJobs
from sfsim.record_values import RecordError
from sfsim.schema import ObjectDef, default_objects, to_18
from sfsim.settings import SimSettings
from sfsim.standard import ensure_standard_records, standard_objects


class Access(enum.Enum):
    """What a call goes through before its handler."""

    ADMIN = "admin"  # the simulator's own endpoints: no faults, no login
    LOGIN = "login"  # logins: faults, but no session and no API version check
    OPEN = "open"  # no session needed and not counted against the daily limit
    API = "api"  # a valid session, counted against the daily limit


@dataclass(frozen=True)
class Endpoint:
    handler: Callable[..., Response]
    access: Access


def _rules() -> list[Rule]:
    data = "/services/data/v<version>"
    table: list[tuple[str, list[str], Callable[..., Response], Access]] = [
        ("/services/oauth2/token", ["POST"], oauth.token, Access.LOGIN),
        ("/services/Soap/u/<version>", ["POST"], oauth.soap_login, Access.LOGIN),
        ("/services/oauth2/revoke", ["GET", "POST"], oauth.revoke, Access.LOGIN),
        ("/services/oauth2/userinfo", ["GET", "POST"], oauth.userinfo, Access.OPEN),
        ("/id/<org_id>/<user_id>", ["GET", "POST"], oauth.identity, Access.OPEN),
        ("/services/data", ["GET"], rest.versions, Access.OPEN),
        (data, ["GET"], rest.resources, Access.API),
        (f"{data}/limits", ["GET"], rest.limits, Access.API),
        (f"{data}/recent", ["GET"], rest.recent, Access.API),
        (f"{data}/sobjects", ["GET"], rest.describe_global, Access.API),
        (f"{data}/sobjects/<sobject>", ["GET"], rest.sobject_info, Access.API),
        (f"{data}/sobjects/<sobject>/describe", ["GET"], rest.describe, Access.API),
        (f"{data}/sobjects/<sobject>", ["POST"], records.create_record, Access.API),
        (f"{data}/sobjects/<sobject>/updated", ["GET"], records.updated_records, Access.API),
        (f"{data}/sobjects/<sobject>/deleted", ["GET"], records.deleted_records, Access.API),
        (f"{data}/sobjects/<sobject>/<record_id>", ["GET", "PATCH", "DELETE"], records.record,
         Access.API),
        (f"{data}/sobjects/<sobject>/<field>/<path:value>", ["GET", "PATCH", "DELETE"],
         records.record_by_external_id, Access.API),
        (f"{data}/query", ["GET"], query.query, Access.API),
        (f"{data}/queryAll", ["GET"], query.query, Access.API),
        (f"{data}/query/<locator>", ["GET"], query.query_more, Access.API),
        (f"{data}/composite/sobjects", ["POST", "PATCH", "DELETE"],
         sobject_collections.collection, Access.API),
        (f"{data}/composite/sobjects/<sobject>", ["GET", "POST"],
         sobject_collections.collection_retrieve, Access.API),
        (f"{data}/composite/sobjects/<sobject>/<field>", ["PATCH"],
         sobject_collections.collection_upsert, Access.API),
        (f"{data}/jobs/ingest", ["POST"], bulk_ingest.create_job, Access.API),
        (f"{data}/jobs/ingest", ["GET"], bulk_ingest.list_jobs, Access.API),
        (f"{data}/jobs/ingest/<job_id>", ["GET", "PATCH", "DELETE"], bulk_ingest.job,
         Access.API),
        (f"{data}/jobs/ingest/<job_id>/batches", ["PUT"], bulk_ingest.upload, Access.API),
        (f"{data}/jobs/ingest/<job_id>/<kind>", ["GET"], bulk_ingest.results, Access.API),
        (f"{data}/jobs/query", ["POST"], bulk_query.create_query_job, Access.API),
        (f"{data}/jobs/query", ["GET"], bulk_query.list_query_jobs, Access.API),
        (f"{data}/jobs/query/<job_id>", ["GET", "PATCH", "DELETE"], bulk_query.query_job,
         Access.API),
        (f"{data}/jobs/query/<job_id>/results", ["GET"], bulk_query.query_job_results,
         Access.API),
        ("/_sim/config", ["GET", "PATCH"], admin.config, Access.ADMIN),
        ("/_sim/reset", ["POST"], admin.reset, Access.ADMIN),
        ("/_sim/records/<sobject>", ["GET", "POST"], admin.records, Access.ADMIN),
        ("/_sim/objects", ["GET"], admin.objects, Access.ADMIN),
        ("/_sim/objects/<sobject>", ["PUT"], admin.define_object, Access.ADMIN),
        ("/_sim/tokens/expire", ["POST"], admin.expire_tokens, Access.ADMIN),
        ("/_sim/requests", ["GET", "DELETE"], admin.request_log, Access.ADMIN),
        ("/_sim/usage", ["GET"], admin.usage, Access.ADMIN),
    ]
    return [Rule(path, methods=methods, endpoint=Endpoint(handler, access))
            for path, methods, handler, access in table]


class Simulator:
    """One simulated org. Call it as a WSGI app."""

    def __init__(self, settings: SimSettings | None = None,
                 objects: dict[str, ObjectDef] | None = None,
                 spool_dir: str | None = None) -> None:
        """A new org; with `settings.state_file`, the org saved there (StateFileError when
        the file cannot be loaded), its unfinished jobs running on."""
        self.settings = settings or SimSettings()
        self.initial_settings = copy.deepcopy(self.settings)
        state_file = Path(self.settings.state_file) if self.settings.state_file else None
        saved = state.read_state_file(state_file) if state_file else None
        if state_file is not None:
            spool_dir = str(state.spool_dir_for(state_file))
            os.makedirs(spool_dir, exist_ok=True)
        schema = dict(objects or default_objects())
        # The org's own objects come with any schema, unless it defines them itself.
        for name, definition in standard_objects().items():
            schema.setdefault(name, definition)
        self.org = Org(schema)
        self.keeper: state.StateKeeper | None = None
        self.jobs = IngestJobs(self.org, self.settings, spool_dir, self.note_change)
        self.query_jobs = QueryJobs(self.org, self.settings, self.note_change)
        self.tokens: dict[str, float] = {}
        self.api_calls = 0
        self.lock = threading.Lock()
        # Fault injection needs reproducible draws (seed), not unpredictable ones.
        self.random = random.Random(self.settings.seed)  # noqa: S311
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        self.query_cursors: dict[str, tuple[list[dict], int]] = {}
        self.routes = Map(_rules(), strict_slashes=False, merge_slashes=True)
        # Requests being answered, so that a stop saves the org after the last of them.
        self.in_flight = threading.Condition()
        self.requests_in_flight = 0
        self.closed = False
        if saved is not None:
            assert state_file is not None
            state.restore(self, saved, state_file)
        ensure_standard_records(self.org, self.settings.username)
        if state_file is not None:
            self._keep_state(state_file)

    def _keep_state(self, state_file: Path) -> None:
        state.remove_stray_files(state.spool_dir_for(state_file), self.jobs.files())
        self.keeper = state.StateKeeper(state_file, lambda: state.snapshot(self))
        try:
            self.keeper.save()
        except OSError as error:
            raise state.StateFileError(
                f"the state file {state_file} cannot be written: {error}") from None
        self.keeper.start()
        self.jobs.resume()
        self.query_jobs.resume()

    def note_change(self) -> None:
        """The org changed: with a state file, it is saved shortly."""
        if self.keeper is not None:
            self.keeper.mark_changed()

    def close(self) -> None:
        """Stop the org. With a state file, running jobs halt between internal batches and
        the org is saved after the last request answered, to go on after a restart;
        without one, the jobs' temporary files are deleted."""
        if self.keeper is None:
            self.jobs.reset()
            return
        with self.in_flight:
            self.closed = True
            self.in_flight.wait_for(lambda: self.requests_in_flight == 0, timeout=30)
        self.jobs.stop()
        self.query_jobs.stop()
        self.keeper.close()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        with self.in_flight:
            closed = self.closed
            self.requests_in_flight += 1
        try:
            if closed:
                response = error_response(503, "SERVER_UNAVAILABLE",
                                          "The server is shutting down.")
            else:
                response = self.dispatch(request)
        finally:
            with self.in_flight:
                self.requests_in_flight -= 1
                self.in_flight.notify_all()
        if request.method != "GET" or not request.path.startswith("/_sim/"):
            self.note_change()
        if not request.path.startswith("/_sim/"):
            self.request_log.append(
                {"method": request.method, "path": request.path, "status": response.status_code}
            )
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self.routes.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        except MethodNotAllowed:
            return error_response(
                405, "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are "
                + ", ".join(sorted(adapter.allowed_methods())),
            )
        except HTTPException as error:
            return error_response(error.code or 400, "NOT_FOUND", str(error.description))
        if endpoint.access is Access.ADMIN:
            return endpoint.handler(self, request, **args)
        fault = self.injected_fault()
        if fault is not None:
            return fault
        if endpoint.access is Access.LOGIN:
            return endpoint.handler(self, request, **args)
        version = args.get("version")
        if version is not None and version not in API_VERSIONS:
            return error_response(
                404, "NOT_FOUND", f"The requested resource does not exist (API version "
                f"v{version} is not supported; use v{API_VERSIONS[0]} to v{API_VERSIONS[-1]})",
            )
        if endpoint.access is Access.API:
            refused = self.check_session(request)
            if refused is not None:
                return refused
            with self.lock:
                self.api_calls += 1
                over = self.api_calls > self.settings.daily_api_limit
            if over:
                return error_response(403, "REQUEST_LIMIT_EXCEEDED",
                                      "TotalRequests Limit exceeded.")
        response = self.answer(endpoint.handler, request, args)
        response.headers["Sforce-Limit-Info"] = (
            f"api-usage={self.api_calls}/{self.settings.daily_api_limit}"
        )
        return response

    def answer(self, handler: Callable[..., Response], request: Request,
               args: Mapping[str, Any]) -> Response:
        """The handler's answer, or its error in Salesforce's shape."""
        try:
            return handler(self, request, **args)
        except JobError as error:
            return error_response(error.status, error.code, error.message)
        except soql.QueryError as error:
            return error_response(400, error.code, error.message)
        except BadRequest as error:
            return error_response(400, error.code, error.message, error.fields)
        except RecordError as error:
            return error_response(400, error.code, error.message, error.fields)
        except Exception as error:
            # Salesforce's shape for an unexpected failure; the traceback goes to the log.
            logging.getLogger("sfsim").exception("request %s %s failed", request.method,
                                                 request.path)
            return error_response(500, "UNKNOWN_EXCEPTION",
                                  f"An unexpected error occurred: {error}")

    def injected_fault(self) -> Response | None:
        settings = self.settings
        status = None
        with self.lock:
            if settings.next_failures:
                status = settings.next_failures.pop(0)
            elif self.random.random() < settings.error_rate_5xx:
                status = 503
            elif self.random.random() < settings.error_rate_429:
                status = 429
            slow = settings.slow_seconds > 0 and self.random.random() < settings.slow_rate
        if slow:
            time.sleep(settings.slow_seconds)
        if status is None:
            return None
        headers = {}
        if settings.retry_after_seconds is not None:
            headers["Retry-After"] = str(settings.retry_after_seconds)
        if status == 429:
            return error_response(429, "REQUEST_LIMIT_EXCEEDED",
                                  "ConcurrentPerOrgLongTxn Limit exceeded.", headers=headers)
        if status == 403:
            return error_response(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return error_response(status, "SERVER_UNAVAILABLE",
                              "The server is temporarily unable to service your request.",
                              headers=headers)

    def check_session(self, request: Request) -> Response | None:
        if not oauth.session_is_valid(self, request):
            return error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return None


__all__ = ["Simulator", "to_18"]
