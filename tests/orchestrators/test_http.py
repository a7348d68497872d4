"""orchestrators.http: every HTTP function of the app answers an unexpected failure as
problem+json (503 with Retry-After for a dependency that is down, else 500), the
traceback in the log and nothing of the exception's text in the answer."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import azure.functions as func
from azure.data.tables import TableClient

from devhost.testing import REPO_ROOT
from devtools.services import free_port
from orchestrators.http import CommittedBeforeFailure, answers_failures
from shared.log_fields import event_fields
from shared.problems import PROBLEM_JSON

# Loads function_app.py as the host does and prints, per HTTP function, whether the
# function the host calls is (or wraps) one `answers_failures` wrapped.
LIST_HTTP_FUNCTIONS = """
import json, pathlib
from devhost.app_loading import load_function_app
from orchestrators.http import ANSWERS_FAILURES
functions = {}
for spec in load_function_app(pathlib.Path(".")):
    if spec.trigger["type"] == "httpTrigger":
        code, wrapped = spec.user_function, False
        while code is not None and not wrapped:
            wrapped = ANSWERS_FAILURES in vars(code)
            code = getattr(code, "__wrapped__", None)
        functions[spec.name] = wrapped
print(json.dumps(functions))
"""

ACCOUNT_KEY = "c2VjcmV0LWFjY291bnQta2V5LW5vdC10by1iZS1zaG93bg=="


def http_functions_of_the_app() -> dict[str, bool]:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true",
           "PYTHONPATH": str(REPO_ROOT)}
    listed = subprocess.run([sys.executable, "-c", LIST_HTTP_FUNCTIONS], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=True)
    functions: dict[str, bool] = json.loads(listed.stdout)
    return functions


def test_every_http_function_of_the_app_answers_failures_as_problems():
    functions = http_functions_of_the_app()

    assert len(functions) >= 23, f"the app registered only {sorted(functions)}"
    assert [name for name, wrapped in functions.items() if not wrapped] == [], \
        "HTTP functions without @answers_failures (put it directly above the def)"


def request(method: str = "GET", path: str = "/api/events") -> func.HttpRequest:
    return func.HttpRequest(method, f"http://127.0.0.1:7071{path}?code=function-key-value",
                            body=b"")


def unreachable_table() -> TableClient:
    return TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;",
        "EventQueue", retry_total=0)


def test_storage_down_is_503_storage_unavailable_naming_the_operation(caplog):
    table = unreachable_table()

    @answers_failures
    async def events_status(req: func.HttpRequest, client: str) -> func.HttpResponse:
        table.get_entity("p", "r")
        raise AssertionError("unreachable")

    with caplog.at_level(logging.ERROR, "orchestrators.http"):
        answer = asyncio.run(events_status(req=request(), client="{}"))

    body = json.loads(answer.get_body())
    assert answer.status_code == 503
    assert answer.mimetype == PROBLEM_JSON
    assert answer.headers["Retry-After"] == "10"
    assert body["code"] == "STORAGE_UNAVAILABLE"
    assert body["status"] == 503 and body["operation"] == "events_status"
    assert body["instance"] == "/api/events"
    assert body["detail"].startswith("GET /api/events failed: Azure Storage")
    text = answer.get_body().decode()
    for leaked in (ACCOUNT_KEY, "Traceback", "Cannot connect", "127.0.0.1", "function-key"):
        assert leaked not in text
    [record] = caplog.records
    assert event_fields(record) == {"event": "http request failed", "operation": "events_status",
                                    "code": "STORAGE_UNAVAILABLE", "status": 503,
                                    "error_type": "ServiceRequestError"}
    assert record.exc_info is not None and record.exc_info[0].__name__ == "ServiceRequestError"


def test_a_defect_is_500_internal_error_without_its_text_and_without_retry_after():
    @answers_failures
    def console_inventory(req: func.HttpRequest) -> func.HttpResponse:
        raise KeyError("Password=hunter2-secret")

    answer = console_inventory(request("GET", "/api/console/inventory"))

    body = json.loads(answer.get_body())
    assert answer.status_code == 500 and answer.mimetype == PROBLEM_JSON
    assert "Retry-After" not in answer.headers
    assert body["code"] == "INTERNAL_ERROR" and body["operation"] == "console_inventory"
    assert "hunter2" not in answer.get_body().decode()
    assert "(KeyError)" in body["detail"]


def test_a_failure_after_the_effect_was_stored_says_what_is_kept_and_what_to_do():
    table = unreachable_table()

    @answers_failures
    async def events_post(req: func.HttpRequest) -> func.HttpResponse:
        try:
            table.get_entity("p", "r")
        except Exception as error:
            raise CommittedBeforeFailure("storing the 2 events",
                                         "The events are kept; posting again is safe") from error
        raise AssertionError("unreachable")

    answer = asyncio.run(events_post(request("POST")))

    body = json.loads(answer.get_body())
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "10"
    assert body["code"] == "STORAGE_UNAVAILABLE"
    assert body["detail"] == (
        "POST /api/events failed after storing the 2 events: Azure Storage could not be "
        "reached or is throttling (ServiceRequestError). The events are kept; posting again "
        "is safe")


def test_an_answer_is_passed_through_untouched():
    @answers_failures
    async def events_status(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("{}", status_code=200, mimetype="application/json")

    answer = asyncio.run(events_status(request()))

    assert answer.status_code == 200 and answer.get_body() == b"{}"
