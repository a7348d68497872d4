"""GET /api/console and its assets on the local host: a data-free page under a strict CSP,
the inventory of sync jobs and the loads API the script reads behind the function key."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

from shared.console.page import ASSETS, STATIC
from tests.console.conftest import SYNC_JOB, ConsoleHost

SEED_LOAD = {
    "loadId": "console-page-load",
    "accounts": [{"name": "Acme Corp", "sourceId": "ERP-1",
                  "contacts": [{"firstName": "Ada", "lastName": "Lovelace",
                                "email": "ada@acme.example"}]}],
}


class PageInventory(HTMLParser):
    """What the page pulls in and anything inline a strict CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in attributes:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if attributes.get("src"):
                self.references.append(attributes["src"] or "")
            else:
                self.inline.append("<script> without src")
        if tag == "link" and attributes.get("href"):
            self.references.append(attributes["href"] or "")


def test_the_page_is_static_anonymous_and_under_a_strict_policy(console_host: ConsoleHost):
    answer = requests.get(console_host.host.url("/api/console"), timeout=30)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.content == (STATIC / "index.html").read_bytes()
    policy = dict(directive.partition(" ")[::2]
                  for directive in answer.headers["Content-Security-Policy"].split("; "))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert not any("unsafe" in value for value in policy.values())
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    page = PageInventory()
    page.feed(answer.text)
    assert page.inline == []
    assert len(page.references) == 3
    # Every file the page names is served, with its type, under the same policy.
    for reference in page.references:
        asset = requests.get(urljoin(answer.url, reference), timeout=30)
        assert asset.status_code == 200, reference
        name = reference.rsplit("/", 1)[-1]
        assert asset.headers["Content-Type"].startswith(ASSETS[name])
        assert asset.headers["Content-Security-Policy"] == \
            answer.headers["Content-Security-Policy"]


def test_only_the_console_files_are_served(console_host: ConsoleHost):
    for name in ("index.htm", "..%2Fpage.py", "page.py", "%2E%2E"):
        answer = requests.get(console_host.host.url(f"/api/console/assets/{name}"), timeout=30)
        assert answer.status_code == 404, name
        if answer.headers.get("Content-Type", "").startswith("application/problem+json"):
            assert answer.json()["code"] == "UNKNOWN_ASSET"
            assert "def " not in answer.text


def test_the_script_never_writes_markup_or_styles_from_data():
    script = (STATIC / "console.js").read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "eval(", "new Function", 'setAttribute("style"', ".style."):
        assert forbidden not in script, forbidden


def test_the_inventory_needs_a_key_and_lists_the_sync_jobs(console_host: ConsoleHost):
    assert requests.get(console_host.host.url("/api/console/inventory"),
                        timeout=30).status_code == 401

    answer = console_host.get("/api/console/inventory")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"job": SYNC_JOB, "enabled": True, "statusUrl": f"sync/{SYNC_JOB}"} in \
        body["syncJobs"]
    assert {"job": "asset-events", "statusUrl": "batch-jobs/asset-events"} in \
        body["batchJobs"]
    # The loads come from the loads API, not from a second view of them here.
    assert set(body) == {"syncJobs", "batchJobs"}


def test_the_batch_api_answers_what_the_script_reads(console_host: ConsoleHost):
    """The names console.js reads from GET batch-jobs/{job}: the newest instances first."""
    console_host.seed_batch_instances("asset-events", {
        "page-older": "SUCCESSFUL", "page-stopped": "STOPPED", "page-newer": "EXECUTING"})

    answer = console_host.get("/api/batch-jobs/asset-events", limit="2")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(row["batchJobInstanceId"], row["status"]) for row in body["instances"]][:2] == [
        ("page-newer", "EXECUTING"), ("page-stopped", "STOPPED")]
    assert body["instances"][0]["failedRecords"] == 1
    following = console_host.get("/api/batch-jobs/asset-events", limit="2",
                                 after=body["next"]).json()
    assert "page-older" in [row["batchJobInstanceId"] for row in following["instances"]]


def test_the_loads_api_answers_what_the_script_reads(console_host: ConsoleHost):
    """The names console.js reads from GET bulk-loads, under the same function key."""
    started = console_host.post("/api/bulk-loads", SEED_LOAD)
    assert started.status_code in (200, 202), started.text
    console_host.wait_for_load("console-page-load")

    answer = console_host.get("/api/bulk-loads", limit="10", since="2000-01-01T00:00:00Z")

    assert answer.status_code == 200, answer.text
    load = next(load for load in answer.json()["loads"]
                if load["loadId"] == "console-page-load")
    assert (load["runtimeStatus"], load["outcome"], load["cancelUrl"]) == \
        ("Completed", "succeeded", None)
    assert load["summary"]["failedRecords"] == 0
    assert [(level["object"], level["records"], level["succeeded"], level["orphansSkipped"])
            for level in load["levels"]] == [("Account", 1, 1, 0), ("Contact", 1, 1, 0)]
    # The script builds these paths from the load id, under the API root it runs from.
    for report in ("results", "failures"):
        assert load[f"{report}Url"] == f"/api/bulk-loads/console-page-load/{report}"
        csv = console_host.get(f"/api/bulk-loads/console-page-load/{report}")
        assert (csv.status_code, csv.headers["Content-Type"].split(";")[0]) == \
            (200, "text/csv")
    assert console_host.get("/api/bulk-loads/console-page-load").json()["loadId"] == \
        "console-page-load"

