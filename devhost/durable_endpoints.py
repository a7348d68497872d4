"""Where the durable API is reachable, as the extension writes it into client bindings.

The `durableClient` binding string and the management URLs of a check-status answer carry
these addresses: the public webhook base URL (with the system key) and the loopback RPC
base URL the Python SDK's `DurableOrchestrationClient` calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask"
DEFAULT_CONNECTION_NAME = "Storage"


@dataclass(frozen=True)
class DurableEndpoints:
    """Where the durable API is reachable, as written into client bindings and payloads."""

    base_url: str  # e.g. http://127.0.0.1:7071/runtime/webhooks/durabletask
    rpc_base_url: str  # e.g. http://127.0.0.1:53122/durabletask/
    hub_name: str
    system_key: str

    def _query_suffix(self, hub_name: str | None, connection: str | None) -> str:
        hub = quote(hub_name or self.hub_name, safe="")
        return (
            f"taskHub={hub}&connection={quote(connection or DEFAULT_CONNECTION_NAME, safe='')}"
            f"&code={quote(self.system_key, safe='')}"
        )

    def management_urls(
        self, instance_id: str, hub_name: str | None = None, connection: str | None = None
    ) -> dict[str, str]:
        instance = f"{self.base_url}/instances/{quote(instance_id, safe='')}"
        suffix = self._query_suffix(hub_name, connection)
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{instance}?{suffix}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{suffix}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{suffix}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{suffix}",
            "purgeHistoryDeleteUri": f"{instance}?{suffix}",
            "restartPostUri": f"{instance}/restart?{suffix}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{suffix}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{suffix}",
        }

    def client_binding_json(self, binding: Mapping[str, Any]) -> str:
        """The string a `durableClient` parameter receives, as the extension builds it."""
        hub = binding.get("taskHub") or self.hub_name
        connection = binding.get("connectionName") or DEFAULT_CONNECTION_NAME
        code = f"code={quote(self.system_key, safe='')}"
        creation = f"{self.base_url}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{creation}?{code}",
                    "createAndWaitOnNewInstancePostUri": (
                        f"{creation}?timeout={{timeoutInSeconds}}"
                        f"&pollingInterval={{intervalInSeconds}}&{code}"
                    ),
                },
                "managementUrls": self.management_urls("INSTANCEID", hub, connection),
                "baseUrl": self.base_url,
                "requiredQueryStringParameters": code,
                "rpcBaseUrl": self.rpc_base_url,
                "httpBaseUrl": "",
            }
        )
