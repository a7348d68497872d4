"""The REST API's org-level resources: versions, resources, describe, limits."""

from __future__ import annotations

import requests

from sfsim.testing import SimulatorHandle
from tests.sfsim.api_calls import V, url


def test_versions_resources_and_describe(api: requests.Session) -> None:
    versions = requests.get(url(api, "/services/data/"), timeout=10).json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert "jobs" in api.get(url(api, V)).json()
    names = {o["name"] for o in api.get(url(api, f"{V}/sobjects")).json()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "OpportunityLineItem", "Asset"} <= names
    fields = {f["name"]: f for f in api.get(url(api, f"{V}/sobjects/Contact/describe")).json()[
        "fields"]}
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["LastName"]["nillable"] is False
    assert fields["External_Id__c"]["externalId"] is True
    assert api.get(url(api, "/services/data/v19.0/sobjects")).status_code == 404


def test_limits_and_usage_header(api: requests.Session, sfsim: SimulatorHandle) -> None:
    sfsim.configure(daily_api_limit=50)
    response = api.get(url(api, f"{V}/limits"))
    limits = response.json()["DailyApiRequests"]
    assert limits == {"Max": 50, "Remaining": 49}
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/50"
