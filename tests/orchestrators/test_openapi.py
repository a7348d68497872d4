"""The OpenAPI document describes every HTTP route the app registers, and only those."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devhost.testing import REPO_ROOT
from orchestrators.openapi import OPENAPI_DOCUMENT

ROUTE_PREFIX = "/api/"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}

# Loads function_app.py as the host does and prints (method, path, auth level) per route.
LIST_ROUTES = """
import json, pathlib
from devhost.app_loading import load_function_app
routes = []
for spec in load_function_app(pathlib.Path(".")):
    if spec.trigger["type"] == "httpTrigger":
        for method in spec.trigger.get("methods") or ["GET", "POST"]:
            routes.append([method.lower(), spec.trigger["route"], spec.trigger["authLevel"]])
print(json.dumps(routes))
"""


def registered_routes() -> set[tuple[str, str, str]]:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true",
           "PYTHONPATH": str(REPO_ROOT)}
    listed = subprocess.run([sys.executable, "-c", LIST_ROUTES], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    return {(method, ROUTE_PREFIX + route, auth.upper())
            for method, route, auth in json.loads(listed.stdout)}


def documented_routes(document: dict) -> set[tuple[str, str, str]]:
    anonymous = "ANONYMOUS"
    routes = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                secured = operation.get("security", document["security"]) != []
                routes.add((method, path, "FUNCTION" if secured else anonymous))
    return routes


def test_every_route_of_the_app_is_in_the_openapi_document_with_its_auth_level():
    document = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))

    registered = registered_routes()
    documented = documented_routes(document)

    assert registered, "the app registered no HTTP route"
    assert registered - documented == set(), "routes missing from orchestrators/openapi.json"
    assert documented - registered == set(), "documented routes the app does not register"


def test_every_documented_4xx_is_a_problem_document_with_a_code():
    document = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
    problem = document["components"]["schemas"]["Problem"]
    shared_responses = document["components"]["responses"]

    assert "code" in problem["required"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if not 400 <= int(status) < 500:
                    continue
                response = shared_responses.get(response.get("$ref", "").rsplit("/", 1)[-1],
                                                response)
                assert list(response["content"]) == ["application/problem+json"], \
                    f"{method.upper()} {path} {status}"
