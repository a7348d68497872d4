"""Bulk API 2.0 query jobs over HTTP (`/jobs/query`); the jobs themselves run in
`sfsim.query_jobs`."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from sfsim.api.bulk_ingest import job_resource
from sfsim.api.shapes import json_body, json_response
from sfsim.downloads import csv_download

if TYPE_CHECKING:
    from sfsim.app import Simulator


def create_query_job(sim: Simulator, request: Request, version: str) -> Response:
    job = sim.query_jobs.create(json_body(request, dict), version)
    return json_response(job.to_json(full=False))


def list_query_jobs(sim: Simulator, request: Request, version: str) -> Response:
    return json_response(
        {"done": True, "nextRecordsUrl": None,
         "records": [j.to_json(full=False) | {"jobType": "V2Query"}
                     for j in sim.query_jobs.listing()]}
    )


def query_job(sim: Simulator, request: Request, version: str, job_id: str) -> Response:
    return job_resource(request, sim.query_jobs, job_id, sim.query_jobs.abort)


def query_job_results(sim: Simulator, request: Request, version: str, job_id: str) -> Response:
    body, locator, count = sim.query_jobs.results(
        job_id, request.args.get("locator"), request.args.get("maxRecords")
    )
    return csv_download(request, sim.settings, io.BytesIO(body), len(body),
                        {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})
