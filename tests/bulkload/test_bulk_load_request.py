"""Validation of POST /api/bulk-loads bodies: every problem listed at once, with a pointer."""

from __future__ import annotations

import json

import pytest

from shared.bulkload.fingerprint import request_fingerprint
from shared.bulkload.messages import LoadInput
from shared.bulkload.request import LoadRequestInvalid
from shared.bulkload.staged import body_digest, encode_level, stage_posted
from shared.bulkload.starter import Problem, difference_from_load, parse_load_request
from shared.bulkload.validation import validate_load_request


def problems_of(body) -> list[tuple[str, str]]:
    with pytest.raises(LoadRequestInvalid) as raised:
        validate_load_request(body)
    return sorted((problem.pointer, problem.code) for problem in raised.value.problems)


def levels_body(*records_per_level, **level_changes):
    levels = [
        {"name": "accounts", "object": "Account", "operation": "upsert",
         "externalIdField": "External_Id__c"},
        {"name": "opportunities", "object": "Opportunity", "operation": "insert",
         "externalIdField": "External_Id__c", "parentReferenceField": "AccountId"},
        {"name": "items", "object": "OpportunityLineItem", "operation": "insert",
         "parentReferenceField": "OpportunityId"},
    ]
    for level, records in zip(levels, records_per_level, strict=False):
        level["records"] = records
    for index, changes in level_changes.items():
        levels[int(index.removeprefix("level"))].update(changes)
    return {"levels": levels}


def test_seed_shape_becomes_an_account_level_and_a_contact_level():
    request = validate_load_request({"loadId": "x-1", "accounts": [
        {"name": "Acme", "industry": None, "billingCity": "Oslo", "sourceId": 42,
         "contacts": [{"firstName": "A", "lastName": "B", "email": "a@b.example"}]},
    ]})

    assert request.load_id == "x-1"
    assert [(level.object, level.operation, level.external_id_field, level.parent,
             level.parent_reference_field) for level in request.levels] == [
        ("Account", "upsert", "External_Id__c", None, None),
        ("Contact", "insert", None, 0, "AccountId"),
    ]
    account, = request.records[0]
    assert account.fields == {"Name": "Acme", "Industry": None, "BillingCity": "Oslo",
                              "External_Id__c": 42}
    assert account.external_id == "42"
    contact, = request.records[1]
    assert (contact.parent_external_id, contact.fields["LastName"]) == ("42", "B")


def test_general_shape_accepts_nested_and_linked_records_on_three_levels():
    request = validate_load_request(levels_body(
        [{"External_Id__c": "A1", "Name": "Acme",
          "opportunities": [{"External_Id__c": "O1", "Name": "Deal",
                             "items": [{"Quantity": 1}]}]}],
        [{"External_Id__c": "O2", "Name": "Other", "parentExternalId": "A1"}],
        [{"Quantity": 2, "parentExternalId": "O2"}],
    ))

    assert [[r.external_id for r in level] for level in request.records] == [
        ["A1"], ["O1", "O2"], [None, None]]
    assert [[r.parent_external_id for r in level] for level in request.records] == [
        [None], ["A1", "A1"], ["O1", "O2"]]
    assert "items" not in request.records[1][0].fields


def test_every_bad_record_is_listed():
    assert problems_of(levels_body(
        [{"Name": "no id"},
         {"External_Id__c": "A1"}, {"External_Id__c": "A1"},
         {"External_Id__c": "A2", "Name": {"nested": True}},
         {"External_Id__c": "A3", "AccountId": "001x"},
         "not an object"],
        [{"External_Id__c": "O1", "parentExternalId": "NOPE"},
         {"External_Id__c": "O2"}],
    )) == [
        ("/levels/0/records/0/External_Id__c", "MISSING_EXTERNAL_ID"),
        ("/levels/0/records/2/External_Id__c", "DUPLICATE_EXTERNAL_ID"),
        ("/levels/0/records/3/Name", "WRONG_TYPE"),
        ("/levels/0/records/5", "WRONG_TYPE"),
        ("/levels/1/records/0/parentExternalId", "UNKNOWN_PARENT"),
        ("/levels/1/records/1", "MISSING_PARENT"),
    ]


def test_a_child_may_not_set_the_parent_reference_itself():
    assert problems_of(levels_body(
        [{"External_Id__c": "A1", "opportunities": [
            {"External_Id__c": "O1", "AccountId": "001000000000001AAA"}]}],
    )) == [("/levels/0/records/0/opportunities/0/AccountId", "PARENT_REFERENCE_SET")]


def test_duplicates_are_found_across_nested_and_linked_records():
    assert problems_of(levels_body(
        [{"External_Id__c": "A1", "opportunities": [{"External_Id__c": "O1"}]}],
        [{"External_Id__c": "O1", "parentExternalId": "A1"}],
    )) == [("/levels/1/records/0/External_Id__c", "DUPLICATE_EXTERNAL_ID")]


def test_level_definitions_are_checked_before_records():
    assert problems_of(levels_body(
        [{"External_Id__c": "A1"}],
        level0={"operation": "merge", "externalIdField": None},
        level1={"parentReferenceField": None, "parent": "items"},
    )) == [
        ("/levels/0/operation", "INVALID_LEVEL"),
        ("/levels/1/parent", "INVALID_LEVEL"),
        ("/levels/1/parentReferenceField", "INVALID_LEVEL"),
    ]
    assert problems_of(levels_body([{"X": 1}], level1={"externalIdField": None})) == [
        ("/levels/1/externalIdField", "INVALID_LEVEL")]


@pytest.mark.parametrize("body, expected", [
    ([], [("", "WRONG_TYPE")]),
    ({}, [("", "SHAPE_UNKNOWN")]),
    ({"accounts": [], "levels": []}, [("", "SHAPE_UNKNOWN")]),
    ({"accounts": {}}, [("/accounts", "WRONG_TYPE")]),
    ({"accounts": [{"sourceId": "1", "nickname": "x"}]},
     [("/accounts/0/nickname", "UNKNOWN_FIELD")]),
    ({"accounts": [{"sourceId": True}]}, [("/accounts/0/sourceId", "MISSING_EXTERNAL_ID")]),
    ({"accounts": [{"sourceId": "1", "contacts": "x"}]},
     [("/accounts/0/contacts", "WRONG_TYPE")]),
    ({"loadId": "has/slash", "accounts": [{"sourceId": "1"}]},
     [("/loadId", "INVALID_LOAD_ID")]),
    ({"loadId": "sync-asset-changes", "accounts": [{"sourceId": "1"}]},
     [("/loadId", "INVALID_LOAD_ID")]),
    ({"levels": [{"object": "Account", "records": []}]},
     [("/levels/0/records", "WRONG_TYPE")]),
])
def test_malformed_shapes_are_reported(body, expected):
    assert problems_of(body) == expected


def test_body_size_is_checked_before_parsing():
    body = json.dumps({"accounts": [{"sourceId": "1"}]}).encode()

    too_large = parse_load_request(body, str(len(body)), len(body) - 1, "/api/bulk-loads")
    fits = parse_load_request(body, str(len(body)), len(body), "/api/bulk-loads")

    assert isinstance(too_large, Problem) and too_large.status == 413
    assert too_large.body["code"] == "BODY_TOO_LARGE"
    assert not isinstance(fits, Problem)


def test_json_nested_too_deeply_is_a_400_not_a_crash():
    body = b"[" * 200_000 + b"]" * 200_000

    answer = parse_load_request(body, None, len(body), "/api/bulk-loads")

    assert isinstance(answer, Problem)
    assert (answer.status, answer.body["code"]) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize("body", [b"", b" \r\n"])
def test_an_empty_body_is_refused_as_empty(body):
    answer = parse_load_request(body, None, 10_000, "/api/bulk-loads")

    assert isinstance(answer, Problem)
    assert (answer.status, answer.body["code"]) == (400, "MALFORMED_JSON")
    assert answer.body["detail"].startswith("the body is empty")


def test_problem_json_lists_every_error():
    body = json.dumps({"accounts": [{"name": "x"}, {"name": "y"}]}).encode()

    answer = parse_load_request(body, None, 10_000, "/api/bulk-loads")

    assert isinstance(answer, Problem)
    assert (answer.status, answer.body["code"]) == (400, "INVALID_RECORDS")
    assert [error["pointer"] for error in answer.body["errors"]] == [
        "/accounts/0/sourceId", "/accounts/1/sourceId"]


def test_a_lone_surrogate_anywhere_is_refused_as_invalid_text():
    body = json.loads('{"accounts": [{"name": "Acme \\ud800", "sourceId": "A1", "contacts": '
                      '[{"lastName": "ok", "\\udfff": "x"}]}]}')

    assert problems_of(body) == [("/accounts/0/contacts/0/?", "INVALID_TEXT"),
                                 ("/accounts/0/name", "INVALID_TEXT")]
    answer = parse_load_request(json.dumps(body).encode(), None, 10_000, "/api/bulk-loads")
    assert isinstance(answer, Problem) and answer.status == 400
    answer.text().encode("utf-8")  # the problem itself is valid text


def test_the_text_na_is_refused_because_bulk_api_reads_it_as_null():
    seed = {"accounts": [{"name": "#N/A", "sourceId": "A1", "industry": " #N/A",
                          "contacts": [{"lastName": "L", "email": "#N/A"}]}]}
    general = levels_body([{"External_Id__c": "A1", "Name": "Acme", "Phone": "#N/A",
                            "Industry": None}])

    assert problems_of(seed) == [("/accounts/0/contacts/0/email", "NULL_MARKER_TEXT"),
                                 ("/accounts/0/name", "NULL_MARKER_TEXT")]
    assert problems_of(general) == [("/levels/0/records/0/Phone", "NULL_MARKER_TEXT")]
    # null is how a field is cleared: it is sent as #N/A.
    request = validate_load_request({**general, "levels": [
        {**general["levels"][0], "records": [{"External_Id__c": "A1", "Industry": None}]}]})
    assert request.records[0][0].fields == {"External_Id__c": "A1", "Industry": None}


def test_required_fields_are_named_per_record_with_the_bodys_own_field_names():
    from shared.bulkload.required_fields import DOCUMENTED_REQUIRED, missing_required_fields

    request = validate_load_request({"accounts": [
        {"sourceId": "A1", "contacts": [{"firstName": "Ada"}, {"lastName": "Ok"}]},
        {"sourceId": "A2", "name": "  "}, {"sourceId": "A3", "name": "Fine"}]})

    missing = missing_required_fields(request, DOCUMENTED_REQUIRED)

    assert [(p.pointer, p.code, p.level, p.external_id) for p in missing] == [
        ("/accounts/0/name", "REQUIRED_FIELD_MISSING", "accounts", "A1"),
        ("/accounts/1/name", "REQUIRED_FIELD_MISSING", "accounts", "A2"),
        ("/accounts/0/contacts/0/lastName", "REQUIRED_FIELD_MISSING", "contacts", None)]


def test_required_fields_come_from_the_orgs_describe():
    from shared.bulkload.required_fields import required_from_describe

    describe = {"fields": [
        {"name": "Name", "nillable": False, "createable": True, "type": "string"},
        {"name": "Id", "nillable": False, "createable": False, "type": "id"},
        {"name": "OwnerId", "nillable": False, "createable": True, "defaultedOnCreate": True},
        {"name": "IsActive__c", "nillable": False, "createable": True, "type": "boolean"},
        {"name": "Region__c", "nillable": False, "createable": True, "type": "picklist"},
        {"name": "Phone", "nillable": True, "createable": True, "type": "phone"}]}

    assert required_from_describe(describe) == {"Name", "Region__c"}


def test_the_fingerprint_digest_is_the_one_loads_were_posted_with_before():
    """Re-posts are compared with fingerprints kept in running loads' inputs: the digest of
    a level must not change from one version to the next."""
    import hashlib

    from shared.bulkload.fingerprint import request_fingerprint

    request = validate_load_request({"accounts": [
        {"sourceId": "A1", "name": "Zoë & Co", "industry": None,
         "contacts": [{"lastName": "Łukasz", "email": "l@example.com"}]}]})

    expected = []
    for level, records in zip(request.levels, request.records, strict=True):
        digest = hashlib.sha256(json.dumps(level.to_json(), sort_keys=True).encode())
        for record in records:
            digest.update(json.dumps([record.external_id, record.parent_external_id,
                                      record.fields], sort_keys=True).encode() + b"\n")
        expected.append(digest.hexdigest())
    assert [level.digest for level in request_fingerprint(request)] == expected


def test_a_body_that_cannot_hold_a_lone_surrogate_is_told_from_its_bytes():
    from shared.bulkload.validation import no_lone_surrogates

    assert no_lone_surrogates('{"name": "Zoë \\u00e9 \\u2028"}'.encode())
    assert not no_lone_surrogates(b'{"name": "Acme \\ud800"}')
    assert not no_lone_surrogates(b'{"name": "\\uDFFF"}')
    assert not no_lone_surrogates(b'{"name": "\\ud83d\\ude00"}')  # a pair: looked at
    assert not no_lone_surrogates('{"name": "Acme"}'.encode("utf-16"))


def test_a_lone_surrogate_in_a_utf16_body_is_refused_as_invalid_text():
    raw = '{"accounts": [{"name": "Acme \\ud800", "sourceId": "A1"}]}'.encode("utf-16")

    answer = parse_load_request(raw, None, 10_000, "/api/bulk-loads")

    assert isinstance(answer, Problem)
    assert [(e["pointer"], e["code"]) for e in answer.body["errors"]] == [
        ("/accounts/0/name", "INVALID_TEXT")]


def test_a_pair_escaped_as_two_surrogates_is_valid_text():
    raw = b'{"accounts": [{"name": "Acme \\ud83d\\ude00", "sourceId": "A1"}]}'

    answer = parse_load_request(raw, None, 10_000, "/api/bulk-loads")

    assert not isinstance(answer, Problem)
    assert answer.records[0][0].fields["Name"] == "Acme \U0001f600"


SEED_BODY = {"loadId": "L", "accounts": [
    {"sourceId": "A1", "name": "Acme", "contacts": [{"lastName": "Lovelace"}]},
    {"sourceId": "A2", "name": "Globex", "contacts": []}]}


def _load_input(**fields):
    return LoadInput("L", "L/run", (), (), 1.0, 60.0, 1000, 1, 0.1, **fields)


def test_a_re_post_is_told_from_the_kept_body_by_its_bytes_then_by_its_records(store):
    body = json.dumps(SEED_BODY).encode()
    request = validate_load_request(json.loads(body))
    stage_posted(store, request.levels, body,
                 encode_level(request.levels[0], request.records[0]))
    loaded = _load_input(body_digest=body_digest(body))
    # The same bytes: not even read.
    assert difference_from_load(loaded, request, body_digest(body), store) is None
    # Other bytes, the same records: the same load.
    spaced = json.dumps(SEED_BODY, indent=2).encode()
    assert difference_from_load(loaded, validate_load_request(json.loads(spaced)),
                                body_digest(spaced), store) is None
    # Other records: the difference named.
    changed = json.loads(json.dumps(SEED_BODY))
    changed["accounts"][0]["name"] = "Other"
    other = json.dumps(changed).encode()
    assert difference_from_load(loaded, validate_load_request(changed), body_digest(other),
                                store) == "the records of level 'accounts' differ from the load's"


def test_a_re_post_of_a_load_started_before_bodies_were_kept_reads_its_fingerprint(store):
    request = validate_load_request(SEED_BODY)
    loaded = _load_input(fingerprint=request_fingerprint(request))  # nothing kept in store
    assert difference_from_load(loaded, request, "any digest", store) is None
    changed = json.loads(json.dumps(SEED_BODY))
    changed["accounts"][0]["contacts"].append({"lastName": "New"})
    assert "level 'contacts' has" in difference_from_load(
        loaded, validate_load_request(changed), "other digest", store)
