"""SOQL queries and the org's limits (REST API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.salesforce.session import SalesforceSession


class QueryApi(SalesforceSession):
    def query(self, soql: str, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Records of a SOQL query, following `nextRecordsUrl` page by page."""
        response = self.request(
            "GET", "queryAll" if include_deleted else "query", params={"q": soql}
        )
        prefix = f"/services/data/v{self.credentials.api_version}/"
        while True:
            body = response.json()
            yield from body.get("records", [])
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            response = self.request("GET", next_url.removeprefix(prefix))

    def limits(self) -> dict[str, dict[str, int]]:
        """The org's limits (`DailyApiRequests`: `Max`, `Remaining`, ...)."""
        limits: dict[str, dict[str, int]] = self.request("GET", "limits").json()
        return limits
