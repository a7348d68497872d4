"""The simulator's HTTP API (a Werkzeug WSGI app): OAuth, REST, sObject Collections,
Bulk API 2.0 ingest, limits, and the `/_sim/` admin endpoints.

Every answer has the shape Salesforce gives: JSON error arrays
`[{"message", "errorCode"}]`, OAuth errors `{"error", "error_description"}`, result CSVs.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import html
import io
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import jwt
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sfsim import soql
from sfsim.downloads import csv_download
from sfsim.ingest import USER_ID, IngestJobs, JobError
from sfsim.org import Org, RecordError, now_text
from sfsim.query_jobs import QueryJobs
from sfsim.schema import ObjectDef, looks_like_id, to_18
from sfsim.settings import SimSettings

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00D4x0000000001EAA"
API_VERSIONS = [f"{v}.0" for v in range(31, 67)]
QUERY_BATCH = 2000
COLLECTION_LIMIT = 200


def error_response(status: int, code: str, message: str, fields: list[str] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return json_response([body], status, headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers,
        content_type="application/json;charset=UTF-8",
    )


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class Simulator:
    """One simulated org. Call it as a WSGI app."""

    def __init__(self, settings: SimSettings | None = None,
                 objects: dict[str, ObjectDef] | None = None,
                 spool_dir: str | None = None) -> None:
        self.settings = settings or SimSettings()
        self.initial_settings = copy.deepcopy(self.settings)
        self.org = Org(objects)
        self.jobs = IngestJobs(self.org, self.settings, spool_dir)
        self.query_jobs = QueryJobs(self.org, self.settings)
        self.tokens: dict[str, float] = {}
        self.api_calls = 0
        self.lock = threading.Lock()
        # Fault injection needs reproducible draws (seed), not unpredictable ones.
        self.random = random.Random(self.settings.seed)  # noqa: S311
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        self.query_cursors: dict[str, tuple[list[dict], int]] = {}
        data = "/services/data/v<version>"
        self.routes = Map(
            [
                Rule("/services/oauth2/token", methods=["POST"], endpoint="token"),
                Rule("/services/Soap/u/<version>", methods=["POST"], endpoint="soap_login"),
                Rule("/services/oauth2/revoke", methods=["GET", "POST"], endpoint="revoke"),
                Rule("/services/oauth2/userinfo", methods=["GET", "POST"], endpoint="userinfo"),
                Rule("/id/<org_id>/<user_id>", methods=["GET", "POST"], endpoint="identity"),
                Rule("/services/data", methods=["GET"], endpoint="versions"),
                Rule(f"{data}", methods=["GET"], endpoint="resources"),
                Rule(f"{data}/limits", methods=["GET"], endpoint="limits"),
                Rule(f"{data}/sobjects", methods=["GET"], endpoint="describe_global"),
                Rule(f"{data}/sobjects/<sobject>", methods=["GET"], endpoint="sobject_info"),
                Rule(f"{data}/sobjects/<sobject>", methods=["POST"], endpoint="create_record"),
                Rule(f"{data}/sobjects/<sobject>/describe", methods=["GET"],
                     endpoint="describe"),
                Rule(f"{data}/sobjects/<sobject>/updated", methods=["GET"],
                     endpoint="updated_records"),
                Rule(f"{data}/sobjects/<sobject>/deleted", methods=["GET"],
                     endpoint="deleted_records"),
                Rule(f"{data}/recent", methods=["GET"], endpoint="recent"),
                Rule(f"{data}/sobjects/<sobject>/<record_id>",
                     methods=["GET", "PATCH", "DELETE"], endpoint="record"),
                Rule(f"{data}/sobjects/<sobject>/<field>/<path:value>",
                     methods=["GET", "PATCH", "DELETE"], endpoint="record_by_external_id"),
                Rule(f"{data}/query", methods=["GET"], endpoint="query"),
                Rule(f"{data}/queryAll", methods=["GET"], endpoint="query"),
                Rule(f"{data}/query/<locator>", methods=["GET"], endpoint="query_more"),
                Rule(f"{data}/composite/sobjects", methods=["POST", "PATCH", "DELETE"],
                     endpoint="collection"),
                Rule(f"{data}/composite/sobjects/<sobject>", methods=["GET", "POST"],
                     endpoint="collection_retrieve"),
                Rule(f"{data}/composite/sobjects/<sobject>/<field>", methods=["PATCH"],
                     endpoint="collection_upsert"),
                Rule(f"{data}/jobs/ingest", methods=["POST"], endpoint="create_job"),
                Rule(f"{data}/jobs/ingest", methods=["GET"], endpoint="list_jobs"),
                Rule(f"{data}/jobs/ingest/<job_id>", methods=["GET", "PATCH", "DELETE"],
                     endpoint="job"),
                Rule(f"{data}/jobs/ingest/<job_id>/batches", methods=["PUT"],
                     endpoint="upload"),
                Rule(f"{data}/jobs/ingest/<job_id>/<kind>", methods=["GET"],
                     endpoint="results"),
                Rule(f"{data}/jobs/query", methods=["POST"], endpoint="create_query_job"),
                Rule(f"{data}/jobs/query", methods=["GET"], endpoint="list_query_jobs"),
                Rule(f"{data}/jobs/query/<job_id>", methods=["GET", "PATCH", "DELETE"],
                     endpoint="query_job"),
                Rule(f"{data}/jobs/query/<job_id>/results", methods=["GET"],
                     endpoint="query_job_results"),
                Rule("/_sim/config", methods=["GET", "PATCH"], endpoint="admin_config"),
                Rule("/_sim/reset", methods=["POST"], endpoint="admin_reset"),
                Rule("/_sim/records/<sobject>", methods=["GET", "POST"],
                     endpoint="admin_records"),
                Rule("/_sim/objects", methods=["GET"], endpoint="admin_objects"),
                Rule("/_sim/objects/<sobject>", methods=["PUT"], endpoint="admin_define"),
                Rule("/_sim/tokens/expire", methods=["POST"], endpoint="admin_expire"),
                Rule("/_sim/requests", methods=["GET", "DELETE"], endpoint="admin_requests"),
                Rule("/_sim/usage", methods=["GET"], endpoint="admin_usage"),
            ],
            strict_slashes=False,
            merge_slashes=True,
        )

    # -- WSGI -------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
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
        if endpoint.startswith("admin_"):
            return getattr(self, endpoint)(request, **args)
        fault = self.injected_fault()
        if fault is not None:
            return fault
        if endpoint == "token":
            return self.token(request)
        if endpoint == "soap_login":
            return self.soap_login(request, args["version"])
        if endpoint == "revoke":
            return self.revoke(request)
        version = args.pop("version", None)
        if version is not None and version not in API_VERSIONS:
            return error_response(
                404, "NOT_FOUND", f"The requested resource does not exist (API version "
                f"v{version} is not supported; use v{API_VERSIONS[0]} to v{API_VERSIONS[-1]})",
            )
        if endpoint not in ("versions", "userinfo", "identity"):
            refused = self.check_session(request)
            if refused is not None:
                return refused
            with self.lock:
                self.api_calls += 1
                over = self.api_calls > self.settings.daily_api_limit
            if over:
                return error_response(403, "REQUEST_LIMIT_EXCEEDED",
                                      "TotalRequests Limit exceeded.")
        try:
            if version is not None:
                args["version"] = version
            response = getattr(self, endpoint)(request, **args)
        except JobError as error:
            response = error_response(error.status, error.code, error.message)
        except soql.QueryError as error:
            response = error_response(400, error.code, error.message)
        except _BadRequest as error:
            response = error_response(400, error.code, error.message, error.fields)
        except RecordError as error:
            response = error_response(400, error.code, error.message, error.fields)
        except Exception as error:
            # Salesforce's shape for an unexpected failure; the traceback goes to the log.
            logging.getLogger("sfsim").exception("request %s %s failed", request.method,
                                                 request.path)
            response = error_response(500, "UNKNOWN_EXCEPTION",
                                      f"An unexpected error occurred: {error}")
        response.headers["Sforce-Limit-Info"] = (
            f"api-usage={self.api_calls}/{self.settings.daily_api_limit}"
        )
        return response

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
        if not self.session_is_valid(request):
            return error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return None

    def session_is_valid(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            # Identity URLs also take the token as a query parameter.
            token = request.args.get("oauth_token", "")
        expires = self.tokens.get(token.strip())
        return expires is not None and expires >= time.time()

    # -- OAuth ------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        settings = self.settings
        if grant == "client_credentials":
            client_id = form.get("client_id") or (request.authorization.username
                                                  if request.authorization else None)
            secret = form.get("client_secret") or (request.authorization.password
                                                   if request.authorization else None)
            if client_id != settings.client_id:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if not secret or not secrets.compare_digest(secret, settings.client_secret):
                return oauth_error("invalid_client", "invalid client credentials")
        elif grant == "password":
            if form.get("client_id") != settings.client_id:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if not secrets.compare_digest(form.get("client_secret", ""), settings.client_secret):
                return oauth_error("invalid_client", "invalid client credentials")
            if not self.password_matches(form.get("username", ""), form.get("password", "")):
                return oauth_error("invalid_grant", "authentication failure")
        elif grant == JWT_BEARER:
            refused = self.verify_assertion(request, form.get("assertion", ""))
            if refused is not None:
                return refused
        elif grant:
            return oauth_error("unsupported_grant_type", "grant type not supported")
        else:
            return oauth_error("invalid_request", "grant_type is missing")
        access_token, issued = self.issue_token()
        base = request.host_url.rstrip("/")
        return json_response(
            {
                "access_token": access_token,
                "signature": secrets.token_urlsafe(32),
                "scope": "api",
                "instance_url": base,
                "id": f"{base}/id/{ORG_ID}/{USER_ID}",
                "token_type": "Bearer",
                "issued_at": str(int(issued * 1000)),
                "api_instance_url": base,
            }
        )

    def revoke(self, request: Request) -> Response:
        token = request.values.get("token", "")
        with self.lock:
            known = self.tokens.pop(token, None) is not None
        if not known:
            return oauth_error("unsupported_token_type", "this token type is not supported")
        return Response(status=200)

    def userinfo(self, request: Request, **_: str) -> Response:
        """The OpenID Connect user info (also served at the token's `id` URL)."""
        if not self.session_is_valid(request):
            return Response(b"Bad_OAuth_Token", status=403, content_type="text/plain")
        base = request.host_url.rstrip("/")
        user_id = USER_ID
        return json_response(
            {
                "sub": f"{base}/id/{ORG_ID}/{user_id}",
                "user_id": user_id,
                "organization_id": ORG_ID,
                "preferred_username": self.settings.username,
                "username": self.settings.username,
                "email": self.settings.username,
                "name": "Integration User",
                "active": True,
                "user_type": "STANDARD",
                "urls": {
                    "rest": f"{base}/services/data/v{{version}}/",
                    "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                    "query": f"{base}/services/data/v{{version}}/query/",
                },
            }
        )

    def identity(self, request: Request, **_: str) -> Response:
        """The identity URL (the token's `id`): Salesforce's own shape, not OpenID's."""
        if not self.session_is_valid(request):
            return Response(b"Bad_OAuth_Token", status=403, content_type="text/plain")
        base = request.host_url.rstrip("/")
        username = self.settings.username
        soap = f"{base}/services/Soap"
        return json_response(
            {
                "id": f"{base}/id/{ORG_ID}/{USER_ID}",
                "asserted_user": True,
                "user_id": USER_ID,
                "organization_id": ORG_ID,
                "username": username,
                "nick_name": username.split("@")[0],
                "display_name": "Integration User",
                "email": username,
                "email_verified": True,
                "first_name": "Integration",
                "last_name": "User",
                "timezone": "GMT",
                "status": {"created_date": None, "body": None},
                "urls": {
                    "enterprise": f"{soap}/c/{{version}}/{ORG_ID[:15]}",
                    "metadata": f"{soap}/m/{{version}}/{ORG_ID[:15]}",
                    "partner": f"{soap}/u/{{version}}/{ORG_ID[:15]}",
                    "rest": f"{base}/services/data/v{{version}}/",
                    "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                    "search": f"{base}/services/data/v{{version}}/search/",
                    "query": f"{base}/services/data/v{{version}}/query/",
                    "recent": f"{base}/services/data/v{{version}}/recent/",
                    "profile": f"{base}/{USER_ID}",
                },
                "active": True,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": 0,
                "last_modified_date": "2024-01-01T00:00:00Z",
                "is_app_installed": True,
            }
        )

    def issue_token(self) -> tuple[str, float]:
        access_token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        issued = time.time()
        with self.lock:
            self.tokens[access_token] = issued + self.settings.token_ttl_seconds
        return access_token, issued

    def password_matches(self, username: str, password: str) -> bool:
        # Salesforce takes the password followed by the user's security token, if any.
        return username == self.settings.username and password.startswith(
            self.settings.password
        )

    def soap_login(self, request: Request, version: str) -> Response:
        """The SOAP `login()` and `logout()` calls that username-password clients
        (jsforce, simple-salesforce) still use."""
        text = request.get_data(as_text=True)

        def element(name: str) -> str:
            found = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
            return html.unescape(found.group(1)) if found else ""

        if re.search(r"<(?:\w+:)?logout\b", text):
            with self.lock:
                known = self.tokens.pop(element("sessionId"), None) is not None
            if not known:
                return _soap_fault("INVALID_SESSION_ID", "Invalid Session ID found in "
                                   "SessionHeader: Illegal Session", "UnexpectedErrorFault")
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
                '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
                "<soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>",
                status=200, content_type="text/xml; charset=utf-8",
            )
        if not self.password_matches(element("username"), element("password")):
            return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; "
                               "or user locked out.", "LoginFault")
        access_token, _ = self.issue_token()
        base = request.host_url.rstrip("/")
        user_id = USER_ID
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            "<loginResponse><result>"
            f"<metadataServerUrl>{base}/services/Soap/m/{version}/{ORG_ID[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired>"
            f"<sandbox>false</sandbox><serverUrl>{base}/services/Soap/u/{version}/"
            f"{ORG_ID[:15]}</serverUrl><sessionId>{html.escape(access_token)}</sessionId>"
            f"<userId>{user_id}</userId><userInfo><organizationId>{ORG_ID}</organizationId>"
            f"<organizationName>sfsim</organizationName><userId>{user_id}</userId>"
            f"<userName>{html.escape(self.settings.username)}</userName>"
            f"<sessionSecondsValid>{int(self.settings.token_ttl_seconds)}"
            "</sessionSecondsValid></userInfo></result></loginResponse></soapenv:Body>"
            "</soapenv:Envelope>"
        )
        return Response(body, status=200, content_type="text/xml; charset=utf-8")

    def verify_assertion(self, request: Request, assertion: str) -> Response | None:
        settings = self.settings
        if not assertion:
            return oauth_error("invalid_request", "assertion is missing")
        if not settings.jwt_certificate_pem:
            return oauth_error(
                "invalid_client",
                "no certificate is configured for JWT bearer: set SFSIM_JWT_CERT",
            )
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return oauth_error("invalid_grant", "invalid assertion")
        if unverified.get("iss") != settings.client_id:
            return oauth_error("invalid_client_id", "client identifier invalid")
        audiences = [request.host_url.rstrip("/"), *settings.jwt_audiences]
        try:
            claims = jwt.decode(
                assertion, _public_key(settings.jwt_certificate_pem), algorithms=["RS256"],
                audience=audiences, options={"require": ["exp", "aud", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            return oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return oauth_error("invalid_grant", "audience is invalid")
        except jwt.InvalidSignatureError:
            return oauth_error("invalid_grant", "invalid assertion")
        except jwt.PyJWTError as error:
            return oauth_error("invalid_grant", f"invalid assertion: {error}")
        if claims.get("sub") != settings.username:
            return oauth_error("invalid_grant", "user hasn't approved this consumer")
        return None

    # -- REST basics ------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return json_response(
            [{"label": _release_label(v), "url": f"/services/data/v{v}", "version": v}
             for v in API_VERSIONS]
        )

    def resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "composite", "jobs", "limits", "recent"]
        resources = {name: f"{base}/{name}" for name in names}
        # As in Salesforce, the identity URL is absolute (clients follow it as is).
        resources["identity"] = f"{request.host_url.rstrip('/')}/id/{ORG_ID}/{USER_ID}"
        return json_response(resources)

    def recent(self, request: Request, version: str) -> Response:
        # Nobody browses the simulated org, so nothing was viewed recently.
        return json_response([])

    def limits(self, request: Request, version: str) -> Response:
        maximum = self.settings.daily_api_limit
        return json_response(
            {
                "DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - self.api_calls)},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkApiBatches": {
                    "Max": 15000, "Remaining": max(0, 15000 - self.jobs.batches_processed),
                },
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            }
        )

    def describe_global(self, request: Request, version: str) -> Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [self._object_summary(o, version) for o in self.org.objects.values()],
            }
        )

    def _object_summary(self, obj: ObjectDef, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {
            "name": obj.name, "label": obj.label or obj.name, "keyPrefix": obj.key_prefix,
            "custom": obj.name.endswith("__c"), "createable": True, "updateable": True,
            "deletable": True, "queryable": True,
            "urls": {
                "sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def _object(self, sobject: str) -> ObjectDef:
        obj = self.org.object_named(sobject)
        if obj is None:
            raise JobError(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        return obj

    def sobject_info(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._object(sobject)
        return json_response({"objectDescribe": self._object_summary(obj, version),
                              "recentItems": []})

    def describe(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._object(sobject)
        type_map = {"string": "string", "id": "id", "date": "date", "datetime": "datetime"}
        fields = [
            {
                "name": f.name, "label": f.label or f.name, "type": type_map.get(f.type, f.type),
                "length": f.length if f.type in ("string", "textarea", "email", "phone",
                                                 "picklist", "id") else 0,
                "nillable": not f.required and f.name != "Id", "unique": f.unique,
                "externalId": f.external_id, "idLookup": f.external_id or f.name == "Id",
                "createable": f.createable, "updateable": f.createable,
                "referenceTo": [f.reference_to] if f.reference_to else [],
                "relationshipName": f.relationship_name if f.type == "reference" else None,
                "defaultedOnCreate": f.name in ("Id", "IsDeleted", "CreatedDate",
                                                "LastModifiedDate", "SystemModstamp"),
                "custom": f.name.endswith("__c"),
            }
            for f in obj.fields.values()
        ]
        return json_response({**self._object_summary(obj, version), "fields": fields})

    def updated_records(self, request: Request, version: str, sobject: str) -> Response:
        """getUpdated: ids of records created or changed between `start` and `end`."""
        obj = self._object(sobject)
        start, end = _replication_window(request)
        ids = [
            record["Id"] for record in self.org.all_records(obj.name)
            if start <= _parse_stamp(record["SystemModstamp"]) < end
        ]
        return json_response({"ids": ids, "latestDateCovered": _stamp_text(end)})

    def deleted_records(self, request: Request, version: str, sobject: str) -> Response:
        """getDeleted: records deleted between `start` and `end`, with when."""
        obj = self._object(sobject)
        start, end = _replication_window(request)
        with self.org.lock:
            deleted = list(self.org.deleted.items())
        found = [
            {"id": record_id, "deletedDate": when}
            for record_id, (name, when) in deleted
            if name == obj.name and start <= _parse_stamp(when) < end
        ]
        earliest = min((_parse_stamp(d["deletedDate"]) for d in found), default=start)
        return json_response({"deletedRecords": found,
                              "earliestDateAvailable": _stamp_text(earliest),
                              "latestDateCovered": _stamp_text(end)})

    def create_record(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._object(sobject)
        body = _json_body(request, dict)
        try:
            result = self.org.write(obj.name, "insert", body)
        except RecordError as error:
            return error_response(400, error.code, error.message, error.fields)
        return json_response({"id": result.id, "success": True, "errors": []}, 201)

    def record(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        obj = self._object(sobject)
        if request.method == "GET":
            record = self.org.get(obj.name, record_id)
            if record is None:
                return error_response(404, "NOT_FOUND", "The requested resource does not exist")
            fields = request.args.get("fields")
            names = [n.strip() for n in fields.split(",")] if fields else list(record)
            return json_response(soql.shape_record(self.org, obj.name, record, names, version))
        try:
            if request.method == "DELETE":
                self.org.write(obj.name, "delete", {"Id": record_id})
            else:
                body = _json_body(request, dict)
                self.org.write(obj.name, "update", {**body, "Id": record_id})
        except RecordError as error:
            status = 404 if error.code in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED",
                                           "MALFORMED_ID") else 400
            if status == 404:
                return error_response(404, "NOT_FOUND", "The requested resource does not exist")
            return error_response(400, error.code, error.message, error.fields)
        return Response(status=204)

    def record_by_external_id(self, request: Request, version: str, sobject: str, field: str,
                              value: str) -> Response:
        obj = self._object(sobject)
        target = obj.field_named(field)
        if target is None or not (target.external_id or target.name == "Id"):
            return error_response(404, "NOT_FOUND", f"Provided external ID field does not "
                                  f"exist or is not accessible: {field}")
        existing = self.org.find_by_unique(obj.name, target.name, value)
        if request.method == "GET":
            record = self.org.get(obj.name, existing) if existing else None
            if record is None:
                return error_response(404, "NOT_FOUND", "The requested resource does not exist")
            return json_response(soql.shape_record(self.org, obj.name, record, list(record),
                                                   version))
        if request.method == "DELETE":
            if not existing:
                return error_response(404, "NOT_FOUND", "The requested resource does not exist")
            self.org.write(obj.name, "delete", {"Id": existing})
            return Response(status=204)
        body = _json_body(request, dict)
        if target.name in body and str(body[target.name]) != value:
            return error_response(400, "INVALID_FIELD", f"The external ID field {target.name} "
                                  "in the URL and in the body disagree", [target.name])
        try:
            result = self.org.write(obj.name, "upsert", {**body, target.name: value}, target.name)
        except RecordError as error:
            return error_response(400, error.code, error.message, error.fields)
        if result.created:
            return json_response({"id": result.id, "success": True, "errors": [],
                                  "created": True}, 201)
        if float(version) < 46:
            # Before API 46.0 an upsert that updated answered 204 without a body.
            return Response(status=204)
        return json_response({"id": result.id, "success": True, "errors": [], "created": False})

    # -- query ------------------------------------------------------------------------

    def query(self, request: Request, version: str) -> Response:
        text = request.args.get("q")
        if not text:
            return error_response(400, "MALFORMED_QUERY", "A query string has to be specified")
        parsed, records = soql.run_query(text, self.org)
        if parsed.count_only:
            return json_response({"totalSize": len(records), "done": True, "records": []})
        shaped = [soql.shape_record(self.org, parsed.sobject, r, parsed.fields, version)
                  for r in records]
        return self._query_page(shaped, 0, version)

    def query_more(self, request: Request, version: str, locator: str) -> Response:
        cursor_id, _, start = locator.partition("-")
        cursor = self.query_cursors.get(cursor_id)
        if cursor is None or not start.isdigit():
            return error_response(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._query_page(cursor[0], int(start), version, cursor_id)

    def _query_page(self, records: list[dict], start: int, version: str,
                    cursor_id: str | None = None) -> Response:
        end = start + QUERY_BATCH
        body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records),
                                "records": records[start:end]}
        if end < len(records):
            cursor_id = cursor_id or self.org.ids.new_id("01g")
            self.query_cursors[cursor_id] = (records, len(records))
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor_id}-{end}"
        return json_response(body)

    # -- sObject Collections ------------------------------------------------------------

    def collection(self, request: Request, version: str) -> Response:
        if request.method == "DELETE":
            ids = [i for i in request.args.get("ids", "").split(",") if i]
            all_or_none = request.args.get("allOrNone", "false").lower() == "true"
            items = []
            for record_id in ids:
                obj = self.org.object_for_id(record_id) if looks_like_id(record_id) else None
                items.append((obj.name if obj else None, {"Id": record_id}))
            return self._write_collection(items, "delete", None, all_or_none)
        body = _json_body(request, dict)
        records = body.get("records")
        if not isinstance(records, list):
            raise _BadRequest("JSON_PARSER_ERROR", "records must be a JSON array")
        items = []
        for record in records:
            if not isinstance(record, dict):
                raise _BadRequest("JSON_PARSER_ERROR", "each record must be a JSON object")
            kind = (record.get("attributes") or {}).get("type")
            if kind is None and request.method == "PATCH" and looks_like_id(
                    str(record.get("Id", ""))):
                found = self.org.object_for_id(str(record["Id"]))
                kind = found.name if found else None
            if kind is None:
                raise _BadRequest("INVALID_TYPE", "Must send a concrete entity type.")
            items.append((kind, record))
        operation = "insert" if request.method == "POST" else "update"
        return self._write_collection(items, operation, None, bool(body.get("allOrNone")))

    def collection_retrieve(self, request: Request, version: str, sobject: str) -> Response:
        """Several records by id (`ids`, `fields` as parameters or a JSON body), in the
        order asked, null where an id matches no record."""
        obj = self._object(sobject)
        if request.method == "POST":
            body = _json_body(request, dict)
            ids, fields = body.get("ids"), body.get("fields")
        else:
            ids = [i for i in request.args.get("ids", "").split(",") if i]
            fields = [f for f in request.args.get("fields", "").split(",") if f]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise _BadRequest("MISSING_ARGUMENT", "ids must name at least one record id")
        if not isinstance(fields, list) or not fields:
            raise _BadRequest("MISSING_ARGUMENT", "fields must name at least one field")
        if len(ids) > COLLECTION_LIMIT:
            raise _BadRequest("EXCEEDED_ID_LIMIT", f"cannot retrieve more than "
                              f"{COLLECTION_LIMIT} records in one call")
        unknown = [f for f in fields if obj.field_named(str(f).strip()) is None]
        if unknown:
            raise _BadRequest("INVALID_FIELD", f"No such column '{unknown[0]}' on entity "
                              f"'{obj.name}'.", [str(unknown[0])])
        names = [str(f).strip() for f in fields]
        records = []
        for record_id in ids:
            record = self.org.get(obj.name, record_id)
            records.append(None if record is None else
                           soql.shape_record(self.org, obj.name, record, names, version))
        return json_response(records)

    def collection_upsert(self, request: Request, version: str, sobject: str,
                          field: str) -> Response:
        obj = self._object(sobject)
        target = obj.field_named(field)
        if target is None or not (target.external_id or target.name == "Id"):
            raise _BadRequest("INVALID_FIELD", f"Field {field} is not an external id field "
                              f"of {obj.name}", [field])
        body = _json_body(request, dict)
        records = body.get("records")
        if not isinstance(records, list):
            raise _BadRequest("JSON_PARSER_ERROR", "records must be a JSON array")
        items = []
        for record in records:
            if not isinstance(record, dict):
                raise _BadRequest("JSON_PARSER_ERROR", "each record must be a JSON object")
            kind = (record.get("attributes") or {}).get("type")
            if kind is not None and kind != obj.name:
                raise _BadRequest("INVALID_TYPE", f"Record type {kind} does not match the "
                                  f"URL's {obj.name}")
            items.append((obj.name, record))
        return self._write_collection(items, "upsert", target.name, bool(body.get("allOrNone")))

    def _write_collection(self, items: list[tuple[str | None, dict]], operation: str,
                          external_id_field: str | None, all_or_none: bool) -> Response:
        if len(items) > COLLECTION_LIMIT:
            raise _BadRequest(
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
                "into this call",
            )
        duplicates: set[str] = set()
        if external_id_field:
            seen: collections.Counter = collections.Counter(
                str(r.get(external_id_field, "")).lower() for _, r in items
            )
            duplicates = {k for k, n in seen.items() if n > 1 and k}
        undo: list = []
        results: list[dict[str, Any]] = []
        with self.org.lock:
            for kind, record in items:
                try:
                    if kind is None or kind not in self.org.objects:
                        raise RecordError("MALFORMED_ID", "malformed id "
                                          + str(record.get("Id", "")), [])
                    if external_id_field and str(record.get(external_id_field, "")).lower() \
                            in duplicates:
                        raise RecordError(
                            "DUPLICATE_VALUE",
                            f"Duplicate external id specified: {record.get(external_id_field)}",
                            [external_id_field],
                        )
                    result = self.org.write(kind, operation, record, external_id_field,
                                            undo=undo)
                    entry: dict[str, Any] = {"id": result.id, "success": True, "errors": []}
                    if operation == "upsert":
                        entry["created"] = result.created
                    results.append(entry)
                except RecordError as error:
                    results.append({"success": False, "errors": [error.to_json()]})
            if all_or_none and any(not r["success"] for r in results):
                self.org.undo(undo)
                rolled_back = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                               "request was using AllOrNone header",
                    "fields": [],
                }
                results = [
                    r if not r["success"] else {"id": None, "success": False,
                                                "errors": [rolled_back]}
                    for r in results
                ]
        for result in results:
            result.setdefault("id", None)
        return json_response(results)

    # -- Bulk API 2.0 ingest ------------------------------------------------------------

    def create_job(self, request: Request, version: str) -> Response:
        job = self.jobs.create(_json_body(request, dict), version)
        return json_response(job.to_json(full=False))

    def list_jobs(self, request: Request, version: str) -> Response:
        jobs = self.jobs.listing()
        start = int(request.args.get("queryLocator") or 0)
        page = jobs[start : start + 1000]
        done = start + 1000 >= len(jobs)
        return json_response(
            {
                "done": done,
                "records": [j.to_json(full=False) | {"jobType": "V2Ingest"} for j in page],
                "nextRecordsUrl": None if done else
                f"/services/data/v{version}/jobs/ingest?queryLocator={start + 1000}",
            }
        )

    def job(self, request: Request, version: str, job_id: str) -> Response:
        if request.method == "GET":
            return json_response(self.jobs.get(job_id).to_json())
        if request.method == "DELETE":
            self.jobs.delete(job_id)
            return Response(status=204)
        job = self.jobs.set_state(job_id, _json_body(request, dict))
        return json_response(job.to_json(full=False))

    def upload(self, request: Request, version: str, job_id: str) -> Response:
        self.jobs.upload(job_id, request.stream, request.headers.get("Content-Type"))
        return Response(status=201)

    def results(self, request: Request, version: str, job_id: str, kind: str) -> Response:
        # Salesforce matches these path segments case-insensitively (unprocessedRecords too).
        kinds = {k.lower(): k for k in ("successfulResults", "failedResults",
                                        "unprocessedrecords")}
        if kind.lower() not in kinds:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")
        path = self.jobs.result_file(job_id, kinds[kind.lower()])
        if not path:
            return Response(status=204)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server
        except FileNotFoundError:
            return Response(status=204)
        return csv_download(request, self.settings, handle, os.fstat(handle.fileno()).st_size)

    # -- Bulk API 2.0 query ---------------------------------------------------------------

    def create_query_job(self, request: Request, version: str) -> Response:
        job = self.query_jobs.create(_json_body(request, dict), version)
        return json_response(job.to_json(full=False))

    def list_query_jobs(self, request: Request, version: str) -> Response:
        return json_response(
            {"done": True, "nextRecordsUrl": None,
             "records": [j.to_json(full=False) | {"jobType": "V2Query"}
                         for j in self.query_jobs.listing()]}
        )

    def query_job(self, request: Request, version: str, job_id: str) -> Response:
        if request.method == "GET":
            return json_response(self.query_jobs.get(job_id).to_json())
        if request.method == "DELETE":
            self.query_jobs.delete(job_id)
            return Response(status=204)
        job = self.query_jobs.abort(job_id, _json_body(request, dict))
        return json_response(job.to_json(full=False))

    def query_job_results(self, request: Request, version: str, job_id: str) -> Response:
        body, locator, count = self.query_jobs.results(
            job_id, request.args.get("locator"), request.args.get("maxRecords")
        )
        return csv_download(request, self.settings, io.BytesIO(body), len(body),
                            {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})

    # -- admin ------------------------------------------------------------------------

    def admin_config(self, request: Request) -> Response:
        if request.method == "PATCH":
            try:
                with self.lock:
                    self.settings.update(_json_body(request, dict))
                    if "seed" in (request.get_json(silent=True) or {}):
                        self.random.seed(self.settings.seed)
            except (ValueError, _BadRequest) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.settings.to_json())

    def admin_reset(self, request: Request) -> Response:
        """Empty the org (records, jobs, API usage, request log) and restore the settings
        it started with (faults off). Issued tokens stay valid."""
        self.jobs.reset()
        self.query_jobs.reset()
        self.org.reset()
        with self.lock:
            self.api_calls = 0
            self.query_cursors.clear()
            self.request_log.clear()
            for name, value in vars(copy.deepcopy(self.initial_settings)).items():
                setattr(self.settings, name, value)
            self.random.seed(self.settings.seed)
        return json_response({"reset": True})

    def admin_records(self, request: Request, sobject: str) -> Response:
        obj = self.org.object_named(sobject)
        if obj is None:
            return json_response({"error": f"unknown object {sobject}"}, 404)
        if request.method == "POST":
            body = _json_body(request, list)
            created = []
            for record in body:
                try:
                    created.append(self.org.write(obj.name, "insert", record).id)
                except RecordError as error:
                    return json_response({"error": str(error), "created": created}, 400)
            return json_response({"ids": created}, 201)
        return json_response(list(self.org.all_records(obj.name)))

    def admin_objects(self, request: Request) -> Response:
        return json_response([o.to_json() for o in self.org.objects.values()])

    def admin_define(self, request: Request, sobject: str) -> Response:
        try:
            definition = ObjectDef.from_json({**_json_body(request, dict), "name": sobject})
        except (TypeError, ValueError, KeyError, _BadRequest) as error:
            return json_response({"error": str(error)}, 400)
        self.org.define_object(definition)
        return json_response(definition.to_json())

    def admin_expire(self, request: Request) -> Response:
        with self.lock:
            count = len(self.tokens)
            self.tokens = dict.fromkeys(self.tokens, 0.0)
        return json_response({"expired": count})

    def admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.request_log.clear()
        return json_response(list(self.request_log))

    def admin_usage(self, request: Request) -> Response:
        return json_response({"api_calls": self.api_calls, "jobs": len(self.jobs.jobs),
                              "time": now_text()})


def _soap_fault(code: str, message: str, fault_type: str) -> Response:
    """A SOAP fault as Salesforce sends it: faultcode, faultstring and the typed detail
    (`sf:exceptionCode`, `sf:exceptionMessage`) that clients read."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {html.escape(message)}"
        f'</faultstring><detail><sf:{fault_type} xsi:type="sf:{fault_type}">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>"
        f"{html.escape(message)}</sf:exceptionMessage></sf:{fault_type}></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, status=500, content_type="text/xml; charset=utf-8")


def _parse_stamp(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _stamp_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _replication_window(request: Request) -> tuple[dt.datetime, dt.datetime]:
    """`start` and `end` of getUpdated / getDeleted, whole minutes as Salesforce counts."""
    try:
        start = _parse_stamp(request.args["start"]).replace(second=0, microsecond=0)
        end = _parse_stamp(request.args["end"]).replace(second=0, microsecond=0)
    except KeyError as missing:
        raise _BadRequest("MISSING_ARGUMENT", f"{missing.args[0]} is required") from None
    except ValueError as error:
        raise _BadRequest("INVALID_REPLICATION_DATE", f"not an ISO 8601 date: {error}") from None
    if end <= start:
        raise _BadRequest("INVALID_REPLICATION_DATE", "end must be at least one minute after "
                          "start")
    return start, end


def _release_label(version: str) -> str:
    """Salesforce's release name of an API version: 60.0 is Spring '24, 62.0 Winter '25."""
    offset = int(float(version)) - 60
    season = ("Spring", "Summer", "Winter")[offset % 3]
    year = 24 + offset // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02}"


class _BadRequest(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


def _json_body(request: Request, kind: type) -> Any:
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as error:
        raise _BadRequest("JSON_PARSER_ERROR", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, kind):
        raise _BadRequest("JSON_PARSER_ERROR", f"the body must be a JSON {kind.__name__}")
    return body


_KEYS: dict[str, Any] = {}


def _public_key(certificate_pem: str) -> Any:
    """The public key of a PEM certificate (or a PEM public key), cached."""
    key = _KEYS.get(certificate_pem)
    if key is None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        data = certificate_pem.encode()
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
        _KEYS[certificate_pem] = key
    return key


__all__ = ["Simulator", "to_18"]
