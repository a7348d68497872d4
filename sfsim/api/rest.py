"""The REST API's org-level resources: versions, the resource list, limits, recent items,
and describe (global, per object, full)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sfsim.api.shapes import API_VERSIONS, json_response, object_or_404
from sfsim.api.sobject_collections import COLLECTION_LIMIT
from sfsim.schema import ObjectDef
from sfsim.standard import ORG_ID, USER_ID

if TYPE_CHECKING:
    from sfsim.app import Simulator


def versions(sim: Simulator, request: Request) -> Response:
    return json_response(
        [{"label": _release_label(v), "url": f"/services/data/v{v}", "version": v}
         for v in API_VERSIONS]
    )


def resources(sim: Simulator, request: Request, version: str) -> Response:
    base = f"/services/data/v{version}"
    names = ["sobjects", "query", "queryAll", "composite", "jobs", "limits", "recent"]
    resources = {name: f"{base}/{name}" for name in names}
    # As in Salesforce, the identity URL is absolute (clients follow it as is).
    resources["identity"] = f"{request.host_url.rstrip('/')}/id/{ORG_ID}/{USER_ID}"
    return json_response(resources)


def recent(sim: Simulator, request: Request, version: str) -> Response:
    # Nobody browses the simulated org, so nothing was viewed recently.
    return json_response([])


def limits(sim: Simulator, request: Request, version: str) -> Response:
    maximum = sim.settings.daily_api_limit
    return json_response(
        {
            "DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - sim.api_calls)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {
                "Max": 15000, "Remaining": max(0, 15000 - sim.jobs.batches_processed),
            },
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }
    )


def describe_global(sim: Simulator, request: Request, version: str) -> Response:
    return json_response(
        {
            "encoding": "UTF-8",
            "maxBatchSize": COLLECTION_LIMIT,
            "sobjects": [object_summary(o, version) for o in sim.org.objects.values()],
        }
    )


def object_summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "name": obj.name, "label": obj.label or obj.name, "keyPrefix": obj.key_prefix,
        "custom": obj.name.endswith("__c"), "createable": True, "updateable": True,
        "deletable": True, "queryable": True,
        "urls": {
            "sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}",
        },
    }


def sobject_info(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    obj = object_or_404(sim.org, sobject)
    return json_response({"objectDescribe": object_summary(obj, version),
                          "recentItems": []})


def describe(sim: Simulator, request: Request, version: str, sobject: str) -> Response:
    obj = object_or_404(sim.org, sobject)
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
    return json_response({**object_summary(obj, version), "fields": fields})


def _release_label(version: str) -> str:
    """Salesforce's release name of an API version: 60.0 is Spring '24, 62.0 Winter '25."""
    offset = int(float(version)) - 60
    season = ("Spring", "Summer", "Winter")[offset % 3]
    year = 24 + offset // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02}"
