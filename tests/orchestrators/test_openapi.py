"""The OpenAPI document describes every HTTP route the app registers, and only those."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from devhost.testing import REPO_ROOT
from orchestrators.bulk_load.endpoints import SEED_OBJECTS
from orchestrators.openapi import OPENAPI_DOCUMENT
from shared.bulkload.required_fields import DOCUMENTED_REQUIRED
from shared.bulkload.starter import check_required_fields, parse_load_request
from shared.problems import Problem

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


# -- the document is valid OpenAPI, and its load body schema agrees with the endpoint -----

README = REPO_ROOT / "README.md"


def readme_load_body() -> dict:
    """The body of the README's `curl ... /api/bulk-loads --data '{...}'` example."""
    text = README.read_text(encoding="utf-8")
    start = text.index("/api/bulk-loads --data '") + len("/api/bulk-loads --data '")
    return json.loads(text[start:text.index("'", start)])


def load_request_validator() -> OAS31Validator:
    """A JSON Schema validator of the document's LoadRequest, its $refs resolved in the
    document (OpenAPI 3.1 schemas are JSON Schema 2020-12 with OpenAPI's vocabulary)."""
    document = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
    registry = Registry().with_resource(
        "urn:app-openapi", Resource.from_contents(document, default_specification=DRAFT202012))
    body_schema = document["paths"]["/api/bulk-loads"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/LoadRequest"}
    return OAS31Validator({"$ref": "urn:app-openapi#/components/schemas/LoadRequest"},
                          registry=registry)


def endpoint_refusal(body: object) -> str | None:
    """What `POST /api/bulk-loads` answers the body with before anything is staged: None
    when accepted, else the problem's code (the same checks, in the same order)."""
    parsed = parse_load_request(json.dumps(body).encode(), None, 50_000_000, "/api/bulk-loads")
    if isinstance(parsed, Problem):
        return parsed.body["code"]
    # Seed-shaped loads are checked against the documented required fields (Name,
    # LastName); general ones against the org's describe, which a static schema cannot say.
    required = {name: DOCUMENTED_REQUIRED[name] for name in SEED_OBJECTS}
    refused = check_required_fields(parsed, required, "/api/bulk-loads")
    return refused.body["code"] if refused is not None else None


def test_the_openapi_document_is_valid_openapi():
    document, base_uri = read_from_filename(str(OPENAPI_DOCUMENT))
    validate(document, base_uri=base_uri)  # raises, naming the first invalid part


def test_the_load_body_schema_accepts_the_readme_example_and_the_documented_one():
    validator = load_request_validator()
    document = json.loads(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
    documented = document["paths"]["/api/bulk-loads"]["post"]["requestBody"]["content"][
        "application/json"]["example"]

    for body in (readme_load_body(), documented):
        assert list(validator.iter_errors(body)) == []
        assert endpoint_refusal(body) is None


def _account(**changes: object) -> dict:
    account: dict = {"name": "Acme", "industry": "Energy", "billingCity": None,
                     "sourceId": "A-1",
                     "contacts": [{"firstName": "Ada", "lastName": "Lovelace",
                                   "email": "ada@example.com"}]}
    account.update(changes)
    return {key: value for key, value in account.items() if value is not _DROP}


def _contact(**changes: object) -> dict:
    contact: dict = {"firstName": "Ada", "lastName": "Lovelace", "email": None}
    contact.update(changes)
    return {key: value for key, value in contact.items() if value is not _DROP}


_DROP = object()
_LEVELS_OK = [{"name": "accounts", "object": "Account", "operation": "upsert",
               "externalIdField": "External_Id__c",
               "records": [{"External_Id__c": "A-1", "Name": "Acme"}]},
              {"name": "contacts", "object": "Contact", "parentReferenceField": "AccountId",
               "records": [{"parentExternalId": "A-1", "LastName": "Lovelace"}]}]

# (what the body is, the body): the schema and the endpoint must agree on each.
AGREEMENT_CASES: list[tuple[str, object]] = [
    ("a seed body", {"accounts": [_account()]}),
    ("a numeric sourceId", {"accounts": [_account(sourceId=17)]}),
    ("null optional fields", {"accounts": [_account(industry=None,
                                                    contacts=[_contact(firstName=None)])]}),
    ("an account without contacts", {"accounts": [_account(contacts=_DROP)]}),
    ("a general body", {"levels": _LEVELS_OK}),
    ("an account without name", {"accounts": [_account(name=_DROP)]}),
    ("an account with a blank name", {"accounts": [_account(name="  ")]}),
    ("an account with a null name", {"accounts": [_account(name=None)]}),
    ("a contact without lastName", {"accounts": [_account(contacts=[_contact(
        lastName=_DROP)])]}),
    ("a contact with an empty lastName", {"accounts": [_account(contacts=[_contact(
        lastName="")])]}),
    ("an account without sourceId", {"accounts": [_account(sourceId=_DROP)]}),
    ("a blank sourceId", {"accounts": [_account(sourceId=" ")]}),
    ("a boolean sourceId", {"accounts": [_account(sourceId=True)]}),
    ("an unknown account member", {"accounts": [_account(phone="555")]}),
    ("an unknown contact member", {"accounts": [_account(contacts=[_contact(phone="1")])]}),
    ("a number as industry", {"accounts": [_account(industry=5)]}),
    ("the null marker as text", {"accounts": [_account(industry="#N/A")]}),
    ("no accounts", {"accounts": []}),
    ("an unknown top-level member", {"accounts": [_account()], "extra": 1}),
    ("both shapes", {"accounts": [_account()], "levels": _LEVELS_OK}),
    ("neither shape", {"loadId": "x-1"}),
    ("a malformed loadId", {"loadId": "-x", "accounts": [_account()]}),
    ("a reserved loadId", {"loadId": "Sync-assets", "accounts": [_account()]}),
    ("not an object", [_account()]),
    ("no levels", {"levels": []}),
    ("a level without object", {"levels": [{"records": [{"Name": "x"}]}]}),
    ("an unknown level member", {"levels": [{**_LEVELS_OK[0], "batchSize": 5}]}),
    ("an unknown operation", {"levels": [{**_LEVELS_OK[0], "operation": "delete"}]}),
    ("eleven levels", {"levels": [{"object": "Account", "records": [{"Name": "x"}]}] * 11}),
]


@pytest.mark.parametrize(("case", "body"), AGREEMENT_CASES,
                         ids=[case for case, _ in AGREEMENT_CASES])
def test_the_load_body_schema_and_the_endpoint_agree(case, body):
    validator = load_request_validator()

    schema_errors = [error.message for error in validator.iter_errors(body)]
    refused = endpoint_refusal(body)

    assert (schema_errors == []) == (refused is None), (
        f"{case}: the endpoint answers {refused or 'accepted'}, the schema says "
        f"{schema_errors or 'valid'}")
