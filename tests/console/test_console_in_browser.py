"""The console in a real browser: headless Chromium (Debian's package, driven through its
chromedriver) against the whole app on the local host."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import SYNC_JOB, ConsoleHost

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Nothing may reach out of the machine, and nothing needs a GPU or a sandbox in a container.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,960")
# Set to a path (e.g. docs/console.png) to keep the screenshot the test takes.
SCREENSHOT_SETTING = "CONSOLE_SCREENSHOT"

LOADS = [
    {"loadId": "accounts-2026-03-01",
     "accounts": [{"name": f"Account {n}", "sourceId": f"ERP-{n}",
                   "contacts": [{"firstName": "Ada", "lastName": f"Owner {n}",
                                 "email": f"owner{n}@example.com"}]} for n in range(1, 9)]},
    # Salesforce refuses an Account name over 255 characters: one failed parent, one orphan.
    {"loadId": "accounts-2026-03-02",
     "accounts": [{"name": "Globex", "sourceId": "ERP-20",
                   "contacts": [{"firstName": "Hank", "lastName": "Scorpio",
                                 "email": "hank@globex.example"}]},
                  {"name": "N" * 300, "sourceId": "ERP-21",  # too long: Salesforce refuses it
                   "contacts": [{"firstName": "No", "lastName": "Parent",
                                 "email": "orphan@example.com"}]}]},
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, f"{missing} missing: run `make deps` (Debian packages chromium, " \
        "chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def severe_messages(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def wait_until(driver: WebDriver, condition, timeout: float = 60.0):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
            lambda d: condition(d))
    except WebDriverException as error:
        raise AssertionError(f"{error}\nbrowser log: {driver.get_log('browser')}") from None


def seed_sync_history(app: ConsoleHost) -> None:
    """Three runs with rows changed a few minutes before each, so lag and rows vary."""
    now = datetime.now(UTC).replace(tzinfo=None)
    first = 1
    for count, minutes_ago in ((60, 9), (25, 5), (40, 2)):
        stamp = now - timedelta(minutes=minutes_ago)
        app.source.insert((asset_id, stamp + timedelta(milliseconds=asset_id))
                          for asset_id in range(first, first + count))
        first += count
        app.run_sync_now()


def test_the_console_shows_jobs_and_loads_and_runs_a_sync_job_now(
    console_host: ConsoleHost, browser: WebDriver, tmp_path: Path
):
    seed_sync_history(console_host)
    for load in LOADS:
        assert console_host.post("/api/bulk-loads", load).status_code == 202
        console_host.wait_for_load(load["loadId"])
    runs_before = {run["runId"] for run in console_host.sync_status()["lastRuns"]}
    console_host.seed_batch_instances("asset-events", {
        "seed-oldest": "SUCCESSFUL", "seed-stopped": "STOPPED", "seed-newest": "EXECUTING"})

    # 1. the page asks for a key, and nothing is shown before one is given
    browser.get(console_host.host.url("/api/console"))
    key_input = wait_until(browser, lambda d: d.find_element(By.ID, "key-input"))
    assert browser.find_element(By.ID, "console").is_displayed() is False
    wait_until(browser, lambda d: "storage reachable" in d.find_element(By.ID, "health").text)
    key_input.send_keys(console_host.host.function_key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()

    # 2. the sync job: lock, lag, watermark, its runs with rows, the chart
    job = wait_until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, f'article.sync-job[data-job="{SYNC_JOB}"]'))
    wait_until(browser, lambda d: len(job.find_elements(By.CSS_SELECTOR, "table.runs tbody tr"))
               == len(runs_before))
    assert "lock: free" in job.text
    rows = [cell.text for cell in job.find_elements(
        By.CSS_SELECTOR, "table.runs tbody tr td:nth-child(6)")]
    assert rows == ["40", "25", "60"]  # newest first
    assert len(job.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")) == 3
    assert len(job.find_elements(By.CSS_SELECTOR, "svg.chart circle.lag-dot")) == 3
    status = console_host.sync_status()
    assert status["watermark"]["cursor"] in job.text

    # 3. the bulk loads (from the loads API): a bar per level, the outcome, the reports
    loads = {card.get_attribute("data-load-id"): card for card in wait_until(
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.bulk-load")) == 2
        and d.find_elements(By.CSS_SELECTOR, "article.bulk-load"))}
    clean, failed = loads["accounts-2026-03-01"], loads["accounts-2026-03-02"]
    assert "succeeded" in clean.text
    bars = clean.find_elements(By.TAG_NAME, "progress")
    assert [(bar.get_attribute("value"), bar.get_attribute("max")) for bar in bars] == \
        [("8", "8"), ("8", "8")]
    assert "completed_with_failures" in failed.text
    assert "1 ok, 1 failed" in failed.text
    assert "1 orphans of 2" in failed.text
    # Links to the reports: results where records loaded, failures where some did not.
    assert not clean.find_elements(By.CSS_SELECTOR, 'a[data-action="failures"]')
    results = failed.find_element(By.CSS_SELECTOR, 'a[data-action="results"]')
    assert results.get_attribute("href") == \
        console_host.host.url("/api/bulk-loads/accounts-2026-03-02/results")
    assert failed.find_element(By.CSS_SELECTOR, 'a[data-action="failures"]')
    assert clean.find_element(By.CSS_SELECTOR, 'a[data-action="results"]')
    # 3b. the batch jobs: each one's newest instances first, a failures CSV once ended
    batch = wait_until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, 'article.batch-job[data-job="asset-events"]'))
    wait_until(browser, lambda d: len(batch.find_elements(By.CSS_SELECTOR, "tbody tr")) == 3)
    assert [row.get_attribute("data-instance-id") for row in batch.find_elements(
        By.CSS_SELECTOR, "tbody tr")] == ["seed-newest", "seed-stopped", "seed-oldest"]
    assert [bool(row.find_elements(By.CSS_SELECTOR, 'button[data-action="failures"]'))
            for row in batch.find_elements(By.CSS_SELECTOR, "tbody tr")] == [
        False, True, True]
    # elapsed: the ended ones' result time; none for the one still running (not 0.0 s)
    assert [row.find_elements(By.TAG_NAME, "td")[6].text
            for row in batch.find_elements(By.CSS_SELECTOR, "tbody tr")] == [
        "", "90.0 s", "90.0 s"]
    # A click downloads the CSV, fetched with the key the link itself cannot carry.
    results.click()
    downloaded = tmp_path / "downloads" / "accounts-2026-03-02-results.csv"
    wait_until(browser, lambda d: downloaded.exists() and downloaded.stat().st_size > 0)
    lines = downloaded.read_text().splitlines()
    assert lines[0].startswith("level,object,sfId,")
    assert len(lines) == 3  # the loaded account and its contact

    screenshot = tmp_path / "console.png"
    assert browser.save_screenshot(str(screenshot))
    if os.environ.get(SCREENSHOT_SETTING):
        shutil.copy(screenshot, os.environ[SCREENSHOT_SETTING])

    # 4. "Run now" starts a run, seen through the API afterwards
    console_host.source.insert([(500, datetime.now(UTC).replace(tzinfo=None)
                                 - timedelta(seconds=5))])
    job.find_element(By.CSS_SELECTOR, 'button[data-action="run-now"]').click()
    notice = wait_until(browser, lambda d: d.find_element(By.ID, "notice").is_displayed()
                        and d.find_element(By.ID, "notice"))
    assert "started" in notice.text, notice.text
    started_run = notice.text.split("run ", 1)[1].split(" ", 1)[0]
    assert started_run not in runs_before
    ended = console_host.wait_for(console_host.sync_status, lambda body: any(
        run["runId"] == started_run and run["outcome"] == "succeeded"
        for run in body["lastRuns"]))
    assert next(run for run in ended["lastRuns"] if run["runId"] == started_run)["rows"] == 1

    assert severe_messages(browser) == []

    # 5. the policy is enforced: inline script is refused, and the refusal is reported
    browser.execute_script(
        "const s = document.createElement('script');"
        "s.textContent = 'document.body.dataset.inline = \"ran\"';"
        "document.body.append(s);")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-inline") is None
    assert any("Content Security Policy" in m for m in severe_messages(browser))


def test_a_refused_key_asks_again(console_host: ConsoleHost, browser: WebDriver):
    browser.get(console_host.host.url("/api/console"))
    wait_until(browser, lambda d: d.find_element(By.ID, "key-input")).send_keys("not-a-key")
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()

    error = wait_until(browser, lambda d: d.find_element(By.ID, "key-error").text
                       and d.find_element(By.ID, "key-error"))

    assert "refused" in error.text
    assert browser.find_element(By.ID, "console").is_displayed() is False
    assert browser.execute_script(
        "return sessionStorage.getItem('console.functionKey')") is None
