"""Activities of a parent-child bulk load: thin adapters over shared/bulkload/levels.py.

Each takes blob names, level definitions and job ids and returns counts, job states and
blob names: records and CSV stay in Blob Storage and never reach orchestration history.
Every activity is safe to run twice (the Durable backend delivers at least once).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.bulkload import levels as level_steps
from shared.bulkload.request import LoadLevel
from shared.bulkload.store import LoadStore, claim_load_run
from shared.config import app_settings
from shared.salesforce import SalesforceClient, process_client
from shared.storage.clients import blob_service

blueprint = df.Blueprint()


def _client() -> SalesforceClient:
    return process_client(app_settings())


def _store(prefix: str) -> LoadStore:
    settings = app_settings()
    return LoadStore.for_load(blob_service(settings.storage), settings.bulk_load.container,
                              prefix)


def _levels(request: dict[str, Any]) -> list[LoadLevel]:
    return [LoadLevel.from_json(level) for level in request["levels"]]


@blueprint.activity_trigger(input_name="request")
def bulk_load_claim_run(request: dict[str, Any]) -> dict[str, Any]:
    claim_load_run(_store(request["prefix"]), request["runToken"])
    return {"claimed": True}


@blueprint.activity_trigger(input_name="request")
def bulk_load_stage_level(request: dict[str, Any]) -> dict[str, Any]:
    staged = level_steps.stage_level(
        _store(request["prefix"]), _levels(request), request["level"],
        request.get("uploadLimit") or app_settings().bulk_load.upload_limit_bytes,
        request.get("skipReason"),
    )
    return staged.to_json()


@blueprint.activity_trigger(input_name="request")
def bulk_load_create_job(request: dict[str, Any]) -> dict[str, Any]:
    return level_steps.create_level_job(_client(), LoadLevel.from_json(request["level"]))


@blueprint.activity_trigger(input_name="request")
def bulk_load_upload_part(request: dict[str, Any]) -> dict[str, Any]:
    return level_steps.upload_and_close_job(
        _client(), _store(request["prefix"]), request["jobId"], request["blob"]
    )


@blueprint.activity_trigger(input_name="request")
def bulk_load_poll_jobs(request: dict[str, Any]) -> list[dict[str, Any]]:
    return level_steps.poll_jobs(_client(), request["jobIds"])


@blueprint.activity_trigger(input_name="request")
def bulk_load_abort_jobs(request: dict[str, Any]) -> list[dict[str, Any]]:
    return level_steps.abort_jobs(_client(), request["jobIds"])


@blueprint.activity_trigger(input_name="request")
def bulk_load_collect_results(request: dict[str, Any]) -> dict[str, Any]:
    results = level_steps.collect_level_results(
        _store(request["prefix"]), _client(), _levels(request), request["level"],
        request["jobs"], request["columns"],
    )
    return results.to_json()


@blueprint.activity_trigger(input_name="request")
def bulk_load_write_failures(request: dict[str, Any]) -> dict[str, Any]:
    store = _store(request["prefix"])
    rows = level_steps.write_failures_report(store, request["levelCount"])
    return {"blob": store.name(level_steps.FAILURES_REPORT), "rows": rows}
