"""API fuzzing from the OpenAPI document against the real app on the local host.

schemathesis generates requests for every operation of `orchestrators/openapi.json`
(valid and invalid bodies, odd path parameters, with the function key) and sends them to
the whole app on the local host with Azurite, the simulator and a SQLite source. Each
answer must not be a server error, must be a status, content type and body the document
declares, and every 4xx must be problem+json with a `code`. The load and the batch
instance the document's examples name are made first, so the explicit examples reach a
real load's status, reports, retry and cancel and a real instance's result and failures.
Bounded: a fixed number of examples per operation and no per-example deadline, so it
takes about a minute and a half here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools import services
from orchestrators.openapi import OPENAPI_DOCUMENT
from shared.batch import batch_durable_id
from shared.problems import PROBLEM_JSON
from tests.chaos.scenarios import TERMINAL
from tests.chaos.whole_app import WholeApp, wait_until
from tests.sync.sources import BASE, create_asset_source

EXAMPLES_PER_OPERATION = 40
SEED_TIMEOUT = 60.0

schema = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)


@schemathesis.serializer("application/x-ndjson")
def ndjson_lines(ctx: Any, value: Any) -> bytes:
    # The document gives an NDJSON body as the array of its lines' objects.
    if isinstance(value, list):
        return "\n".join(json.dumps(item) for item in value).encode()
    return value if isinstance(value, bytes) else str(value).encode()


def every_4xx_is_a_problem_with_a_code(ctx, response, case) -> None:
    # A method the route does not have never reaches the app: the host answers 404 with
    # an empty body, as Azure's does.
    if case.method.upper() != case.operation.method.upper():
        return
    if not 400 <= response.status_code < 500:
        return
    values = {name.lower(): value for name, value in response.headers.items()}
    content_type = values.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith(PROBLEM_JSON), \
        f"{response.status_code} answered as {content_type!r}, not problem+json"
    body = response.json()
    assert isinstance(body.get("code"), str) and body["code"], f"problem without a code: {body}"
    assert body.get("status") == response.status_code, f"problem status differs: {body}"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, every_4xx_is_a_problem_with_a_code]


def request_example(path: str, method: str, media_type: str = "application/json") -> Any:
    operation = schema.raw_schema["paths"][path][method]
    return operation["requestBody"]["content"][media_type]["example"]


def seed_documented_examples(app: WholeApp) -> None:
    """The load and the batch instance the document's examples name, ended: so the explicit
    examples reach a real load's status, reports, retry and cancel, and a real instance."""
    load = app.request("POST", "/api/bulk-loads",
                       json=request_example("/api/bulk-loads", "post"), timeout=60)
    assert load.status_code == 202, load.text
    contacts = app.request("POST", "/api/batch-jobs/contacts", params={"instanceId": "try-1"},
                           json=request_example("/api/batch-jobs/{job}", "post"), timeout=60)
    assert contacts.status_code == 202, contacts.text
    for instance in (load.json()["loadId"], batch_durable_id("contacts", "try-1")):
        ended = wait_until(lambda instance=instance: (app.durable_status(instance) or {})
                           .get("runtimeStatus") in TERMINAL, SEED_TIMEOUT)
        assert ended, f"{instance} did not end: {app.durable_status(instance)}"


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, azurite, sfsim_server) -> Iterator[WholeApp]:
    workdir = tmp_path_factory.mktemp("fuzzed-app")
    source = create_asset_source(
        services.sqlite_odbc_connection_string(workdir / "source.db"), "sqlite")
    source.insert((asset_id, BASE) for asset_id in range(1, 20))
    app = WholeApp.create(workdir, azurite.connection_string, sfsim_server, source)
    app.start()
    try:
        seed_documented_examples(app)
        yield app
    finally:
        app.stop()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_declared_and_no_server_error(case, fuzzed_app: WholeApp) -> None:
    host = fuzzed_app.running_host
    case.call_and_validate(base_url=host.base_url,
                           headers={"x-functions-key": host.function_key},
                           checks=CHECKS, timeout=60)


def test_the_host_serves_the_checked_in_document_without_a_key(fuzzed_app: WholeApp) -> None:
    host = fuzzed_app.running_host

    served = requests.get(host.url("/api/openapi.json"), timeout=30)

    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
