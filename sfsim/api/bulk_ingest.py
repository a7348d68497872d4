"""Bulk API 2.0 ingest jobs over HTTP (`/jobs/ingest`); the jobs themselves are kept in
`sfsim.ingest` and run in `sfsim.ingest_run`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sfsim.api.shapes import error_response, json_body, json_response
from sfsim.downloads import csv_download
from sfsim.ingest import IngestJobs
from sfsim.ingest_job import IngestJob
from sfsim.query_jobs import QueryJob, QueryJobs

if TYPE_CHECKING:
    from sfsim.app import Simulator


def create_job(sim: Simulator, request: Request, version: str) -> Response:
    job = sim.jobs.create(json_body(request, dict), version)
    return json_response(job.to_json(full=False))


def list_jobs(sim: Simulator, request: Request, version: str) -> Response:
    # Every job here is a Bulk API 2.0 job without PK chunking: the filters keep all or none.
    job_type = request.args.get("jobType")
    pk_chunking = request.args.get("isPkChunkingEnabled", "").lower() == "true"
    kept = job_type in (None, "V2Ingest") and not pk_chunking
    jobs = sim.jobs.listing() if kept else []
    start = int(request.args.get("queryLocator") or 0)
    page = jobs[start : start + 1000]
    done = start + 1000 >= len(jobs)
    filters = "".join(f"&{name}={request.args[name]}" for name in
                      ("jobType", "isPkChunkingEnabled") if name in request.args)
    return json_response(
        {
            "done": done,
            "records": [j.to_json(full=False) | {"jobType": "V2Ingest"} for j in page],
            "nextRecordsUrl": None if done else
            f"/services/data/v{version}/jobs/ingest?queryLocator={start + 1000}{filters}",
        }
    )


def job(sim: Simulator, request: Request, version: str, job_id: str) -> Response:
    return job_resource(request, sim.jobs, job_id, sim.jobs.set_state)


def upload(sim: Simulator, request: Request, version: str, job_id: str) -> Response:
    sim.jobs.upload(job_id, request.stream, request.headers.get("Content-Type"))
    return Response(status=201)


def results(sim: Simulator, request: Request, version: str, job_id: str, kind: str) -> Response:
    # Salesforce matches these path segments case-insensitively (unprocessedRecords too).
    kinds = {k.lower(): k for k in ("successfulResults", "failedResults",
                                    "unprocessedrecords")}
    if kind.lower() not in kinds:
        return error_response(404, "NOT_FOUND", "The requested resource does not exist")
    path = sim.jobs.result_file(job_id, kinds[kind.lower()])
    if not path:
        return Response(status=204)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server
    except FileNotFoundError:
        return Response(status=204)
    return csv_download(request, sim.settings, handle, os.fstat(handle.fileno()).st_size)


def job_resource(request: Request, jobs: IngestJobs | QueryJobs, job_id: str,
                 change_state: Callable[[str, Any], IngestJob | QueryJob]) -> Response:
    """GET, DELETE or PATCH (a state change) one Bulk API 2.0 job, ingest or query."""
    if request.method == "GET":
        return json_response(jobs.get(job_id).to_json())
    if request.method == "DELETE":
        jobs.delete(job_id)
        return Response(status=204)
    changed = change_state(job_id, json_body(request, dict))
    return json_response(changed.to_json(full=False))
