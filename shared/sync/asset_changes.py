"""The example job (seed 000): the asset changes view, keyset-paged on
(ChangeTimestamp, Asset_ID), upserted into Salesforce Asset by External_Id__c, or POSTed
as JSON batches to a Process API.

The view's shape (SQL Server; `devtools/embedded_source.py` builds the same in SQLite):

    dbo.Usr_SW_Salesforce_Assets_Changes_V(
        Asset_ID int, ChangeTimestamp datetime2, Asset_Name nvarchar, Serial_Number
        nvarchar, Status nvarchar, Quantity decimal, Price decimal, Install_Date date,
        Contact_Email nvarchar)

with an index on (ChangeTimestamp, Asset_ID) in the underlying table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.config import AssetChangesSyncSettings, SyncSettings
from shared.config.framework import setting_name
from shared.sync.job import HttpSinkSpec, JobDefinition, SalesforceSinkSpec, SourceSpec, SyncJob

COLUMNS = (
    "Asset_ID", "ChangeTimestamp", "Asset_Name", "Serial_Number", "Status", "Quantity",
    "Price", "Install_Date", "Contact_Email",
)


def _number(value: Any) -> Any:
    # The exact class first: the driver's Decimal costs no isinstance.
    if value.__class__ is Decimal or isinstance(value, Decimal):
        return float(value)
    return value  # None, an int or a float


def _day(value: Any) -> str | None:
    if value.__class__ is date:
        return date.isoformat(value)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def asset_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A masked view row -> a Salesforce Asset, upserted by External_Id__c."""
    return {
        "External_Id__c": f"ASSET-{row['Asset_ID']}",
        "Name": row["Asset_Name"],
        "SerialNumber": row["Serial_Number"],
        "Status": row["Status"],
        "Quantity": _number(row["Quantity"]),
        "Price": _number(row["Price"]),
        "InstallDate": _day(row["Install_Date"]),
    }


def asset_change_message(row: Mapping[str, Any]) -> dict[str, Any]:
    """A masked view row -> the Process API's asset change message (all columns)."""
    changed = row["ChangeTimestamp"]
    return {
        "assetId": row["Asset_ID"],
        "changedAt": changed.isoformat() if isinstance(changed, datetime) else str(changed),
        "name": row["Asset_Name"],
        "serialNumber": row["Serial_Number"],
        "status": row["Status"],
        "quantity": _number(row["Quantity"]),
        "price": _number(row["Price"]),
        "installDate": _day(row["Install_Date"]),
        "contactEmail": row["Contact_Email"],
    }


def asset_changes_job(
    definition: JobDefinition, section: AssetChangesSyncSettings, sync: SyncSettings
) -> SyncJob:
    if section.sink == "http":
        sink: HttpSinkSpec | SalesforceSinkSpec = HttpSinkSpec(
            url=section.http_url or "", authorization=section.http_authorization,
            key_fields=("assetId",),
        )
        mapping = asset_change_message
    else:
        sink = SalesforceSinkSpec(sobject="Asset", external_id_field="External_Id__c")
        mapping = asset_record
    return SyncJob(
        name=definition.name,
        description="asset changes view -> Salesforce Asset (seed 000)",
        source=SourceSpec(
            connection_string=section.connection or "",
            relation=section.view,
            cursor_column="ChangeTimestamp",
            cursor_kind="timestamp",
            key_columns=("Asset_ID",),
            columns=COLUMNS,
            initial_cursor=datetime.fromisoformat(section.initial_watermark.strip()),
            lag=timedelta(seconds=section.lag),
            dialect=section.dialect,
            login_timeout=sync.source_login_timeout,
            query_timeout=sync.source_query_timeout,
        ),
        map_record=mapping,
        masked_fields=("Contact_Email",),
        sink=sink,
        schedule_setting=definition.schedule_setting,
        page_size=section.page_size,
        max_run_time=timedelta(seconds=section.max_run_time),
        min_interval=timedelta(seconds=section.min_interval),
        enabled=section.enabled,
        pages_per_generation=sync.pages_per_generation,
        checkpoint_pages=sync.checkpoint_pages,
        checkpoint_interval=sync.checkpoint_interval,
        pages_in_flight=sync.pages_in_flight,
        backlog_threshold=section.backlog_threshold if section.sink == "salesforce" else 0,
        partitions=section.partitions,
        partitions_setting=setting_name(AssetChangesSyncSettings, "partitions"),
        view_setting=setting_name(AssetChangesSyncSettings, "view"),
        # ASSET-<Asset_ID> and assetId: one per Asset_ID, never one for two.
        sink_key_follows_source_key=True,
    )


ASSET_CHANGES = JobDefinition("asset-changes", "asset_changes_sync", asset_changes_job)
