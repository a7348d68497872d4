"""`make run`'s embedded source: a SQLite database with seed 000's asset changes view,
whose rows keep changing so the example sync job has something to move, tick after tick.

    python -m devtools.embedded_source [--interval 5] [--seed-rows 200] [--summary-every 60]

The database file is the one named by `SYNC_ASSET_CHANGES_SOURCE_CONNECTION` (from the
environment or local.settings.json) when that is a SQLite connection string, else
`.local/embedded-source.db`. Change timestamps are UTC text `YYYY-MM-DD HH:MM:SS.SSS`,
the format the sync's SQLite dialect compares against. It prints one line when it starts
and then one summary per period that saw changes (`--verbose`: one per change), so a
terminal shared with the host stays readable. Ctrl-C (SIGTERM) stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.console import say
from devtools.services import stop_on_signals

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = Path(".local") / "embedded-source.db"
CONNECTION_SETTING = "SYNC_ASSET_CHANGES_SOURCE_CONNECTION"
VIEW = "Usr_SW_Salesforce_Assets_Changes_V"
NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
STATUSES = ("Purchased", "Shipped", "Installed", "Registered", "Obsolete")
PRODUCTS = ("Pump", "Compressor", "Valve", "Sensor", "Controller", "Chiller")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS assets (
    Asset_ID INTEGER PRIMARY KEY,
    ChangeTimestamp TIMESTAMP NOT NULL,
    Asset_Name VARCHAR(80) NOT NULL,
    Serial_Number VARCHAR(40),
    Status VARCHAR(40),
    Quantity NUMERIC(12, 2),
    Price NUMERIC(12, 2),
    Install_Date DATE,
    Contact_Email VARCHAR(120)
);
CREATE INDEX IF NOT EXISTS ix_assets_change ON assets (ChangeTimestamp, Asset_ID);
CREATE VIEW IF NOT EXISTS {VIEW} AS
    SELECT Asset_ID, ChangeTimestamp, Asset_Name, Serial_Number, Status, Quantity, Price,
           Install_Date, Contact_Email
    FROM assets;
"""


def database_path(environ: dict[str, str], settings_file: Path) -> Path:
    """The SQLite file the example job reads, as its connection setting names it."""
    connection = environ.get(CONNECTION_SETTING)
    if connection is None and settings_file.exists():
        values = json.loads(settings_file.read_text()).get("Values", {})
        connection = values.get(CONNECTION_SETTING)
    return sqlite_database(connection) or DEFAULT_DATABASE


def sqlite_database(connection: str | None) -> Path | None:
    """The `Database` of a SQLite ODBC connection string; None for any other database."""
    if connection and "sqlite" in connection.lower():
        match = re.search(r"(?:^|;)\s*Database\s*=\s*([^;]+)", connection, re.IGNORECASE)
        if match:
            return Path(match.group(1).strip().strip("{}"))
    return None


def open_database(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    # WAL lets the sync read through ODBC while this process writes.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(SCHEMA)
    return connection


def seed(connection: sqlite3.Connection, rows: int, rng: random.Random) -> int:
    """Fill an empty table with `rows` assets changed over the past day; returns rows added."""
    (existing,) = connection.execute("SELECT COUNT(*) FROM assets").fetchone()
    if existing:
        return 0
    with connection:
        connection.execute("BEGIN")
        for asset_id in range(1, rows + 1):
            seconds_ago = rng.randint(60, 86_400)
            connection.execute(
                "INSERT INTO assets VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now', ?), "
                "?, ?, ?, ?, ?, ?, ?)",
                (asset_id, f"-{seconds_ago} seconds", *_asset_values(asset_id, rng)),
            )
    return rows


def _asset_values(asset_id: int, rng: random.Random) -> tuple:
    product = rng.choice(PRODUCTS)
    return (
        f"{product} {asset_id:05d}", f"SN-{rng.randint(10**7, 10**8 - 1)}",
        rng.choice(STATUSES), rng.randint(1, 5), round(rng.uniform(100, 25_000), 2),
        f"202{rng.randint(0, 5)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        f"contact{asset_id}@example.com",
    )


def change_some_rows(connection: sqlite3.Connection, rng: random.Random) -> tuple[int, int]:
    """Update a few assets and sometimes add one, stamped now; returns (updated, added)."""
    (highest,) = connection.execute("SELECT COALESCE(MAX(Asset_ID), 0) FROM assets").fetchone()
    updated = added = 0
    with connection:
        connection.execute("BEGIN")
        for asset_id in rng.sample(range(1, highest + 1), k=min(highest, rng.randint(1, 5))):
            connection.execute(
                f"UPDATE assets SET Status = ?, ChangeTimestamp = {NOW} WHERE Asset_ID = ?",
                (rng.choice(STATUSES), asset_id),
            )
            updated += 1
        if rng.random() < 0.5:
            connection.execute(
                f"INSERT INTO assets VALUES (?, {NOW}, ?, ?, ?, ?, ?, ?, ?)",
                (highest + 1, *_asset_values(highest + 1, rng)),
            )
            added = 1
    return updated, added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between changes")
    parser.add_argument("--seed-rows", type=int, default=200)
    parser.add_argument("--summary-every", type=float, default=60.0, metavar="SECONDS",
                        help="print what changed at most this often, and only if anything did")
    parser.add_argument("--verbose", action="store_true", help="print every change")
    arguments = parser.parse_args(argv)

    path = database_path(dict(os.environ), REPO_ROOT / "local.settings.json")
    connection = open_database(path)
    rng = random.Random()  # noqa: S311 (demo data, not secrets)
    added = seed(connection, arguments.seed_rows, rng)
    (total,) = connection.execute("SELECT COUNT(*) FROM assets").fetchone()
    say(f"embedded source: {path} view {VIEW}, {total} assets"
        + (f" (seeded {added})" if added else "")
        + f"; a few change every {arguments.interval:g} s")

    stop = stop_on_signals()
    summary = ChangeSummary(period=arguments.summary_every, started=time.monotonic())
    while not stop.wait(arguments.interval):
        updated, inserted = change_some_rows(connection, rng)
        if arguments.verbose:
            say(f"embedded source: {updated} assets changed, {inserted} added")
        else:
            line = summary.add(updated, inserted, time.monotonic())
            if line:
                say(line)
    connection.close()
    return 0


@dataclass
class ChangeSummary:
    """Changes counted over a period; `add` returns the line to print when a period ends."""

    period: float
    started: float
    updated: int = 0
    added: int = 0

    def add(self, updated: int, added: int, now: float) -> str | None:
        self.updated += updated
        self.added += added
        if now - self.started < self.period:
            return None
        line = (f"embedded source: {self.updated} assets changed, {self.added} added "
                f"in the last {now - self.started:.0f} s") if self.updated or self.added else None
        self.started, self.updated, self.added = now, 0, 0
        return line


if __name__ == "__main__":
    raise SystemExit(main())
