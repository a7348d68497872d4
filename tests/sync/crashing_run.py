"""A run in its own process that stops dead after the sink accepted its second page.

Used by the kill test: it prints `accepted` once the second page reached Salesforce and
then waits, before the checkpoint, for the test to SIGKILL it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient

from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.sync.pages import sync_next_page
from shared.sync.run import begin_run
from shared.sync.sinks import SalesforceSink
from shared.sync.state import SyncState
from tests.sync.sources import AssetSource, asset_job


class StopAfterSecondPage:
    def __init__(self, sink) -> None:
        self.sink = sink
        self.pages = 0

    def deliver(self, records):
        delivery = self.sink.deliver(records)
        self.pages += 1
        with open(os.environ["DELIVERED_FILE"], "a") as delivered:
            delivered.writelines(record["External_Id__c"] + "\n" for record in records)
        if self.pages == 2:
            print("accepted", flush=True)
            time.sleep(120)
        return delivery


def main() -> None:
    config = json.loads(os.environ["CRASH_CONFIG"])
    source = AssetSource(**config["source"])
    job = asset_job(source, page_size=config["page_size"])
    state = SyncState(
        TableServiceClient.from_connection_string(config["storage"]), *config["tables"]
    )
    client = SalesforceClient(SalesforceCredentials(**config["salesforce"]))
    sink = StopAfterSecondPage(SalesforceSink(client, "Asset", "External_Id__c"))
    begun = begin_run(job, state, "run-crashing", datetime.now(UTC))
    while not sync_next_page(job, state, sink, "run-crashing", begun.upper_bound).done:
        pass
    sys.exit("the run ended without being killed")


if __name__ == "__main__":
    main()
