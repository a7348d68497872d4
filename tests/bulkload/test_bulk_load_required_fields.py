"""Required fields on create, from the simulator org's describe: read once per object and
kept, and the documented ones when the org cannot be asked."""

from __future__ import annotations

from shared.bulkload.required_fields import DOCUMENTED_REQUIRED, RequiredFields


def describes(sfsim, sobject: str) -> int:
    return sum(1 for request in sfsim.requests_log()
               if request["path"].endswith(f"/sobjects/{sobject}/describe"))


def test_an_objects_describe_is_read_once_and_kept(sf_client, sfsim):
    sfsim.clear_requests_log()
    required = RequiredFields()

    first = required.of(sf_client, ["Opportunity"])
    again = required.of(sf_client, ["Opportunity"])

    assert first == again
    assert {"Name", "StageName", "CloseDate"} <= first["Opportunity"]
    assert describes(sfsim, "Opportunity") == 1


def test_the_documented_fields_stand_in_when_the_org_cannot_be_asked(sf_client, sfsim):
    sfsim.clear_requests_log()
    required = RequiredFields()
    sfsim.configure(next_failures=[503, 503, 503])  # every try of the describe

    unreachable = required.of(sf_client, ["Contact"])
    unknown = required.of(sf_client, ["NoSuchObject__c"])
    answered = required.of(sf_client, ["Contact"])

    assert unreachable == {"Contact": DOCUMENTED_REQUIRED["Contact"]}
    assert unknown == {"NoSuchObject__c": frozenset()}
    # Not kept: the next load asks the org again, and its answer is kept.
    assert "LastName" in answered["Contact"]
    assert describes(sfsim, "Contact") == 1  # the answered one (refused tries are not logged)
    assert required.of(None, ["Lead"]) == {"Lead": DOCUMENTED_REQUIRED["Lead"]}
