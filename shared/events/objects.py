"""The objects events may name, and how each maps to the source view and Salesforce.

An event's `object` must be one of these: an event the drain could not process is refused
when posted, not dead-lettered later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EventObject:
    name: str
    key_kind: Literal["integer", "text"]
    sobject: str
    external_id_field: str
    external_id_prefix: str

    def external_id(self, record_id: str) -> str:
        return f"{self.external_id_prefix}{record_id}"


# Seed 000's asset changes view, keyed by Asset_ID, upserted into Asset by External_Id__c
# exactly as the sync job writes it (shared/sync/asset_changes.py), so both agree.
ASSET = EventObject(
    name="Asset", key_kind="integer", sobject="Asset", external_id_field="External_Id__c",
    external_id_prefix="ASSET-",
)

EVENT_OBJECTS: dict[str, EventObject] = {ASSET.name: ASSET}
