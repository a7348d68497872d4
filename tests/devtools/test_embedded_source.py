from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from devtools.console import stamped
from devtools.embedded_source import ChangeSummary
from devtools.services import REPO_ROOT


def test_changing_rows_prints_nothing_after_the_start_line(tmp_path: Path):
    database = tmp_path / "source.db"
    connection_string = f"Driver={{SQLite3}};Database={database};"
    env = dict(os.environ, SYNC_ASSET_CHANGES_SOURCE_CONNECTION=connection_string)
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.embedded_source", "--interval", "0.02",
         "--seed-rows", "5"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        added = 0
        while added < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
            # The table appears once the source has created its schema.
            with (contextlib.closing(sqlite3.connect(database)) as connection,
                  contextlib.suppress(sqlite3.OperationalError)):
                added = connection.execute("SELECT COUNT(*) FROM assets").fetchone()[0] - 5
        assert added >= 5, "the source added no rows"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert stamped(lines[0]) == lines[0]
    assert f"{database} view Usr_SW_Salesforce_Assets_Changes_V, 5 assets (seeded 5)" in lines[0]


def test_a_summary_is_printed_once_a_period_and_only_after_changes():
    summary = ChangeSummary(period=60, started=1000.0)
    assert summary.add(2, 1, 1010.0) is None
    assert summary.add(3, 0, 1061.0) == (
        "embedded source: 5 assets changed, 1 added in the last 61 s")
    assert summary.add(0, 0, 1130.0) is None
    assert summary.add(1, 0, 1140.0) is None
    assert summary.add(0, 0, 1200.0) == (
        "embedded source: 1 assets changed, 0 added in the last 70 s")
