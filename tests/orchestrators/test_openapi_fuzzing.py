"""API fuzzing from the OpenAPI document against the real app on the local host.

schemathesis generates requests for every operation of `orchestrators/openapi.json`
(valid and invalid bodies, odd path parameters, with the function key) and sends them to
the whole app on the local host with Azurite, the simulator and a SQLite source. Each
answer must not be a server error, must be a status, content type and body the document
declares, and every 4xx must be problem+json with a `code`. Bounded: a fixed number of
examples per operation and no per-example deadline, so it takes about a minute here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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
from shared.problems import PROBLEM_JSON
from tests.chaos.whole_app import WholeApp
from tests.sync.sources import BASE, create_asset_source

EXAMPLES_PER_OPERATION = 40

schema = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)


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


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, azurite, sfsim_server) -> Iterator[WholeApp]:
    workdir = tmp_path_factory.mktemp("fuzzed-app")
    source = create_asset_source(
        services.sqlite_odbc_connection_string(workdir / "source.db"), "sqlite")
    source.insert((asset_id, BASE) for asset_id in range(1, 6))
    app = WholeApp.create(workdir, azurite.connection_string, sfsim_server, source)
    app.start()
    yield app
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
