"""sObject Collections upsert by external id: outcomes per record, chunks of 200."""

from __future__ import annotations

import datetime as dt

import requests

from sfsim.schema import to_18
from sfsim.testing import SimulatorHandle
from shared.salesforce import SalesforceClient


def test_upsert_creates_then_updates_by_external_id(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    first = client.upsert_records(
        "Account",
        "External_Id__c",
        [{"External_Id__c": "A1", "Name": "Acme"}, {"External_Id__c": "A2", "Name": "Beta"}],
    )
    assert [(o.index, o.external_id, o.success, o.created) for o in first] == [
        (0, "A1", True, True),
        (1, "A2", True, True),
    ]
    second = client.upsert_records(
        "Account", "External_Id__c", [{"External_Id__c": "A1", "Name": "Acme Corp"}]
    )
    assert second[0].created is False
    assert second[0].id == first[0].id
    names = {r["External_Id__c"]: r["Name"] for r in sfsim.records("Account")}
    assert names == {"A1": "Acme Corp", "A2": "Beta"}


def test_per_record_errors_carry_salesforce_codes(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.insert_records(
        "Account", [{"Name": "Holder", "AccountNumber": "x", "External_Id__c": "TAKEN"}]
    )
    client.upsert_records(
        "Contact", "External_Id__c", [{"External_Id__c": "C0", "LastName": "Existing"}]
    )
    outcomes = client.upsert_records(
        "Contact",
        "External_Id__c",
        [
            {"External_Id__c": "C1", "FirstName": "No last name"},
            {
                "External_Id__c": "C2",
                "LastName": "Orphan",
                "Account": {"External_Id__c": "MISSING"},
            },
            {"External_Id__c": "C3", "LastName": "Bad id", "AccountId": to_18("0014x00000009ZZ")},
            {
                "External_Id__c": "C4",
                "LastName": "Linked",
                "Account": {"External_Id__c": "TAKEN"},
                "Birthdate": dt.date(1990, 5, 17),
            },
            {"External_Id__c": "C5", "LastName": "Bad mail", "Email": "not-an-address"},
        ],
    )
    codes = [[code for code, _ in o.errors] for o in outcomes]
    assert codes == [
        ["REQUIRED_FIELD_MISSING"],
        ["INVALID_FIELD"],
        ["INVALID_CROSS_REFERENCE_KEY"],
        [],
        ["INVALID_EMAIL_ADDRESS"],
    ]
    assert outcomes[0].errors[0][1] == "Required fields are missing: [LastName]"
    assert "Foreign key external ID: MISSING not found" in outcomes[1].errors[0][1]
    linked = next(r for r in sfsim.records("Contact") if r["External_Id__c"] == "C4")
    holder = sfsim.records("Account")[0]
    assert linked["AccountId"] == holder["Id"]
    assert linked["Birthdate"] == "1990-05-17"


def test_duplicate_value_on_a_unique_field(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sfsim.define_object(
        "Badge__c",
        {
            "key_prefix": "a01",
            "fields": [
                {"name": "Code__c", "external_id": True},
                {"name": "Serial__c", "unique": True},
            ],
        },
    )
    client.upsert_records("Badge__c", "Code__c", [{"Code__c": "B1", "Serial__c": "S-1"}])
    outcome = client.upsert_records("Badge__c", "Code__c", [{"Code__c": "B2", "Serial__c": "S-1"}])
    assert outcome[0].success is False
    assert outcome[0].errors[0][0] == "DUPLICATE_VALUE"
    assert "Serial__c duplicates value on record with id" in outcome[0].errors[0][1]


def test_same_external_id_twice_in_one_call_fails_both(client: SalesforceClient) -> None:
    outcomes = client.upsert_records(
        "Account",
        "External_Id__c",
        [
            {"External_Id__c": "D", "Name": "one"},
            {"External_Id__c": "d", "Name": "two"},
            {"External_Id__c": "E", "Name": "fine"},
        ],
    )
    assert [o.success for o in outcomes] == [False, False, True]
    assert outcomes[0].errors[0][0] == "DUPLICATE_VALUE"


def test_records_above_200_are_sent_in_chunks(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    records = [{"External_Id__c": f"K{i}", "Name": f"Account {i}"} for i in range(450)]
    client.upsert_records("Account", "External_Id__c", records)
    calls = [r for r in sfsim.requests_log() if "/composite/sobjects/" in r["path"]]
    assert len(calls) == 3
    outcomes = client.upsert_records("Account", "External_Id__c", records)
    assert [o.index for o in outcomes] == list(range(450))
    assert all(o.success and o.created is False for o in outcomes)
    assert len(sfsim.records("Account")) == 450


def test_upsert_failures_answers_the_failed_records_only_by_input_index(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    records = [{"External_Id__c": f"F{i}", "Name": f"Account {i}"} for i in range(250)]
    del records[3]["Name"]
    records[210]["Nope__c"] = 1
    failures = client.upsert_failures("Account", "External_Id__c", records)
    assert [(o.index, o.external_id, o.success, [code for code, _ in o.errors])
            for o in failures] == [
        (3, "F3", False, ["REQUIRED_FIELD_MISSING"]),
        (210, "F210", False, ["INVALID_FIELD"]),
    ]
    assert len(sfsim.records("Account")) == 248
    assert client.upsert_failures("Account", "External_Id__c", records[4:200]) == []


def test_all_or_none_rolls_back_the_chunk(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    client.upsert_records("Account", "External_Id__c", [{"External_Id__c": "R1", "Name": "Before"}])
    outcomes = client.upsert_records(
        "Account",
        "External_Id__c",
        [
            {"External_Id__c": "R1", "Name": "After"},
            {"External_Id__c": "R2", "Name": "New"},
            {"External_Id__c": "R3"},
        ],
        all_or_none=True,
    )
    assert [o.success for o in outcomes] == [False, False, False]
    assert outcomes[0].errors[0][0] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert outcomes[2].errors[0][0] == "REQUIRED_FIELD_MISSING"
    assert [(r["External_Id__c"], r["Name"]) for r in sfsim.records("Account")] == [
        ("R1", "Before")
    ]


def test_unknown_field_fails_the_record_not_the_call(client: SalesforceClient) -> None:
    outcomes = client.upsert_records(
        "Account", "External_Id__c", [{"External_Id__c": "U", "Name": "x", "Nope__c": 1}]
    )
    assert outcomes[0].errors[0][0] == "INVALID_FIELD"


def test_query_follows_next_records_url(client: SalesforceClient, sfsim: SimulatorHandle) -> None:
    sfsim.insert_records("Account", [{"Name": f"Q{i:04}"} for i in range(2100)])
    names = [r["Name"] for r in client.query("SELECT Name FROM Account ORDER BY Name")]
    assert names == [f"Q{i:04}" for i in range(2100)]
    pages = [r for r in sfsim.requests_log() if "/query" in r["path"]]
    assert len(pages) == 2


def test_limits_report_remaining_api_calls(client: SalesforceClient,
                                           sfsim: SimulatorHandle) -> None:
    sfsim.configure(daily_api_limit=100)
    client.limits()
    assert client.limits()["DailyApiRequests"] == {"Max": 100, "Remaining": 98}



def test_upserts_sent_from_a_request_prepared_once_carry_what_requests_would_send(
    client: SalesforceClient, sfsim: SimulatorHandle
) -> None:
    sent: list[tuple[int, requests.PreparedRequest]] = []
    client.session.hooks["response"].append(
        lambda answer, **_: sent.append((answer.status_code, answer.request)))
    records = [{"External_Id__c": "P1", "Name": "Prepared"}]
    client.upsert_records("Account", "External_Id__c", records)
    list(client.query("SELECT Id FROM Account"))  # query parameters: Session.request
    client.session.cookies.set("BrowserId", "b1", domain="127.0.0.1", path="/")
    client.upsert_records("Account", "External_Id__c", records)
    sfsim.expire_tokens()  # the next upsert is refused, logs in again and is sent again
    client.upsert_records("Account", "External_Id__c", records)
    # Logins first and after the 401.
    assert [status for status, _ in sent] == [200, 200, 200, 200, 401, 200, 200]
    _, (_, upsert), (_, query), (_, with_cookie), (_, refused), _, (_, again) = sent
    assert upsert.method == "PATCH"
    assert upsert.url and upsert.url.endswith("/composite/sobjects/Account/External_Id__c")
    assert upsert.headers["Content-Length"] == str(len(upsert.body or b""))
    assert upsert.headers["Content-Type"] == "application/json"
    assert query.url and "?q=SELECT" in query.url
    assert {name: upsert.headers[name] for name in query.headers} == dict(query.headers)
    assert "Cookie" not in upsert.headers
    assert with_cookie.headers["Cookie"] == "BrowserId=b1"
    assert refused.headers["Authorization"] == upsert.headers["Authorization"]
    assert again.headers["Authorization"] != upsert.headers["Authorization"]
    assert again.body == upsert.body
    assert again.headers["Cookie"] == "BrowserId=b1"
