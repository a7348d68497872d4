"""A run in its own process that stops dead after the sink accepted a chosen page.

Used by the kill tests: it prints `accepted` once that page (`kill_after_page`, default
the second) reached Salesforce and then waits, before its checkpoint, for the test to
SIGKILL it. `checkpoint_pages` sets how many accepted pages one checkpoint covers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient

from shared.salesforce import SalesforceClient, SalesforceCredentials
from shared.sync.pages import sync_pages
from shared.sync.run import begin_run
from shared.sync.sinks import SalesforceSink
from shared.sync.state import SyncState
from tests.sync.sources import AssetSource, asset_job


class StopAfterPage:
    def __init__(self, sink, last: int) -> None:
        self.sink = sink
        self.last = last
        self.pages = 0

    def deliver(self, records):
        delivery = self.sink.deliver(records)
        self.pages += 1
        with open(os.environ["DELIVERED_FILE"], "a") as delivered:
            delivered.writelines(record["External_Id__c"] + "\n" for record in records)
        if self.pages == self.last:
            print("accepted", flush=True)
            time.sleep(120)
        return delivery


def main() -> None:
    config = json.loads(os.environ["CRASH_CONFIG"])
    source = AssetSource(**config["source"])
    job = asset_job(source, page_size=config["page_size"],
                    checkpoint_pages=config.get("checkpoint_pages", 1),
                    checkpoint_interval=600.0)  # only full checkpoints, none by time
    state = SyncState(
        TableServiceClient.from_connection_string(config["storage"]), *config["tables"]
    )
    client = SalesforceClient(SalesforceCredentials(**config["salesforce"]))
    sink = StopAfterPage(SalesforceSink(client, "Asset", "External_Id__c"),
                         config.get("kill_after_page", 2))
    begun = begin_run(job, state, "run-crashing", datetime.now(UTC))
    while not sync_pages(job, state, sink, "run-crashing", begun.upper_bound).done:
        pass
    sys.exit("the run ended without being killed")


if __name__ == "__main__":
    main()
