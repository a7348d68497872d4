"""The records every org has: its Organization and the integration user.

Clients read them right after logging in: the Salesforce CLI reads the user
(`/sobjects/User/{id}`, for its username) and queries the Organization (name, edition,
sandbox or not); simple-salesforce's `is_sandbox()` queries the Organization too. Their
ids are fixed (the identity URL and the token's `id` name them) and never issued to a
new record.
"""

from __future__ import annotations

from typing import Any

from sfsim.org import Org
from sfsim.schema import FieldDef, ObjectDef, to_18

# Counter 0 in the id factory's scheme: never issued to a created record.
ORG_ID = to_18("00D4x0000000000")
USER_ID = to_18("0054x0000000000")
ORG_NAME = "sfsim"
USER_FIRST_NAME = "Integration"
USER_LAST_NAME = "User"


def standard_objects() -> dict[str, ObjectDef]:
    user = ObjectDef("User", "005", {f.name: f for f in (
        FieldDef("Username", required=True, unique=True, length=80),
        FieldDef("LastName", required=True, length=80),
        FieldDef("FirstName", length=40),
        FieldDef("Name", length=121),
        FieldDef("Alias", required=True, length=8),
        FieldDef("Email", "email", required=True, length=128),
        FieldDef("IsActive", "boolean"),
        FieldDef("UserType", "picklist", length=40),
        FieldDef("TimeZoneSidKey", "picklist", length=40),
        FieldDef("LocaleSidKey", "picklist", length=40),
        FieldDef("LanguageLocaleKey", "picklist", length=40),
        FieldDef("EmailEncodingKey", "picklist", length=40),
    )})
    organization = ObjectDef("Organization", "00D", {f.name: f for f in (
        FieldDef("Name", length=80),
        FieldDef("InstanceName", length=5),
        FieldDef("IsSandbox", "boolean"),
        FieldDef("TrialExpirationDate", "datetime"),
        FieldDef("NamespacePrefix", length=15),
        FieldDef("OrganizationType", "picklist", length=40),
        FieldDef("LanguageLocaleKey", "picklist", length=40),
        FieldDef("DefaultLocaleSidKey", "picklist", length=40),
        FieldDef("TimeZoneSidKey", "picklist", length=40),
    )})
    return {user.name: user, organization.name: organization}


def seed_standard_records(org: Org, username: str) -> None:
    """Put (or put back) the Organization and the integration user named `username`."""
    locale: dict[str, Any] = {"TimeZoneSidKey": "GMT", "LanguageLocaleKey": "en_US"}
    org.put_record("Organization", {
        "Id": ORG_ID, "Name": ORG_NAME, "InstanceName": "SIM1", "IsSandbox": False,
        "TrialExpirationDate": None, "NamespacePrefix": None,
        "OrganizationType": "Developer Edition", "DefaultLocaleSidKey": "en_US", **locale,
    })
    org.put_record("User", {
        "Id": USER_ID, "Username": username, "FirstName": USER_FIRST_NAME,
        "LastName": USER_LAST_NAME, "Name": f"{USER_FIRST_NAME} {USER_LAST_NAME}",
        "Alias": "integ", "Email": username, "IsActive": True, "UserType": "Standard",
        "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8", **locale,
    })


def ensure_standard_records(org: Org, username: str) -> None:
    """Seed the Organization and the integration user unless a restored org has them as
    they should be (a client may have changed them; a new username replaces the user)."""
    user = org.get("User", USER_ID)
    if (user is None or user.get("Username") != username
            or org.get("Organization", ORG_ID) is None):
        seed_standard_records(org, username)
