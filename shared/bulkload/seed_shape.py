"""The seed's shape of a bulk load: accounts, each with its contacts (seed 002).

    {"accounts": [{"name", "industry", "billingCity", "sourceId",
                   "contacts": [{"firstName", "lastName", "email"}]}]}

becomes Account upserted by `External_Id__c` (= sourceId), then Contact inserted with
`AccountId`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.bulkload.request import (
    LoadLevel,
    LoadRecord,
    LoadRequest,
    RecordProblem,
    escape_pointer,
    json_type,
    text_id,
    value_problem,
)
from shared.salesforce.bulk_csv import NULL_MARKER

SEED_ACCOUNT_FIELDS = {
    "name": "Name", "industry": "Industry", "billingCity": "BillingCity",
    "sourceId": "External_Id__c",
}
SEED_CONTACT_FIELDS = {"firstName": "FirstName", "lastName": "LastName", "email": "Email"}
ACCOUNT_ALIASES = {api: key for key, api in SEED_ACCOUNT_FIELDS.items()}
CONTACT_ALIASES = {api: key for key, api in SEED_CONTACT_FIELDS.items()}


def seed_shape(accounts: Any, load_id: str | None, problems: list[RecordProblem]) -> LoadRequest:
    levels = [
        LoadLevel("accounts", "Account", "upsert", "External_Id__c"),
        LoadLevel("contacts", "Contact", "insert", None, 0, "AccountId"),
    ]
    request = LoadRequest(load_id, levels, [[], []], seed_shape=True)
    if not isinstance(accounts, list) or not accounts:
        problems.append(RecordProblem(
            "/accounts", "WRONG_TYPE", "accounts must be a non-empty list of objects"
        ))
        return request
    seen: dict[str, str] = {}
    for index, account in enumerate(accounts):
        pointer = f"/accounts/{index}"
        if not isinstance(account, dict):
            problems.append(RecordProblem(pointer, "WRONG_TYPE", "an account must be an object",
                                          "accounts"))
            continue
        source_id = text_id(account.get("sourceId"))
        fields = _seed_fields(account, SEED_ACCOUNT_FIELDS, {"contacts"}, pointer, "accounts",
                              source_id, problems)
        if source_id is None:
            problems.append(RecordProblem(
                pointer + "/sourceId", "MISSING_EXTERNAL_ID",
                "sourceId (the account's external id) is missing or not a string or number",
                "accounts",
            ))
        elif source_id in seen:
            problems.append(RecordProblem(
                pointer + "/sourceId", "DUPLICATE_EXTERNAL_ID",
                f"sourceId {source_id!r} is also used by {seen[source_id]}", "accounts",
                source_id,
            ))
        else:
            seen[source_id] = pointer
        request.records[0].append(LoadRecord(fields, source_id, None, pointer, ACCOUNT_ALIASES))
        contacts = account.get("contacts", [])
        if not isinstance(contacts, list):
            problems.append(RecordProblem(pointer + "/contacts", "WRONG_TYPE",
                                          "contacts must be a list of objects", "accounts",
                                          source_id))
            continue
        for contact_index, contact in enumerate(contacts):
            contact_pointer = f"{pointer}/contacts/{contact_index}"
            if not isinstance(contact, dict):
                problems.append(RecordProblem(contact_pointer, "WRONG_TYPE",
                                              "a contact must be an object", "contacts"))
                continue
            contact_fields = _seed_fields(contact, SEED_CONTACT_FIELDS, set(), contact_pointer,
                                          "contacts", None, problems)
            request.records[1].append(LoadRecord(contact_fields, None, source_id,
                                                 contact_pointer, CONTACT_ALIASES))
    return request


def _seed_fields(
    record: Mapping[str, Any], names: Mapping[str, str], nested: set[str], pointer: str,
    level: str, external_id: str | None, problems: list[RecordProblem],
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in record.items():
        api_name = names.get(key)
        if api_name is not None and value.__class__ is str and value != NULL_MARKER:
            fields[api_name] = value  # the usual case, checked once and cheaply
            continue
        if key in nested:
            continue
        if key not in names:
            problems.append(RecordProblem(
                f"{pointer}/{escape_pointer(key)}", "UNKNOWN_FIELD",
                f"unknown member {key!r}; expected {', '.join([*names, *sorted(nested)])}",
                level, external_id,
            ))
            continue
        if key == "sourceId":
            # Checked as the external id (a string or a whole number) by the caller.
            fields[names[key]] = value
            continue
        if value is not None and not isinstance(value, str):
            problems.append(RecordProblem(
                f"{pointer}/{key}", "WRONG_TYPE",
                f"{key} must be a string or null, got {json_type(value)}", level, external_id,
            ))
            continue
        refused = value_problem(value)
        if refused is not None:
            problems.append(RecordProblem(f"{pointer}/{key}", *refused, level, external_id))
            continue
        fields[names[key]] = value
    return fields


def validated_seed_records(accounts: list[dict[str, Any]], level_index: int
                           ) -> Iterator[tuple[str | None, str | None, dict[str, Any]]]:
    """(external id, parent's external id, fields) of each record of the level, as
    `seed_shape` makes them, from accounts it has already validated (the body of a load
    whose digest matches the one taken at its POST): nothing is checked again."""
    if level_index == 0:
        for account in accounts:
            yield (text_id(account.get("sourceId")), None,
                   {SEED_ACCOUNT_FIELDS[key]: value for key, value in account.items()
                    if key != "contacts"})
        return
    for account in accounts:
        source_id = text_id(account.get("sourceId"))
        for contact in account.get("contacts", ()):
            yield (None, source_id,
                   {SEED_CONTACT_FIELDS[key]: value for key, value in contact.items()})
