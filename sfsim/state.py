"""The org kept in a file across restarts (`--state FILE`).

The file holds what a client could notice after a restart: the schema, the records and
deleted ids, the id counter, ingest and query jobs with their results, issued tokens, open
query cursors and API usage. It is read at start (a file that cannot be read stops the
start with an error: an empty org in its place would lose the records silently) and
written whole a short while after changes, and at shutdown: written to a temporary file,
synced, then renamed over the old one, so a crash leaves the old or the new org, never
half of one. Uploads and result files live in a folder beside it (`FILE` without its
suffix, plus `-files`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sfsim.app import Simulator

FORMAT = "sfsim-org/1"
# Changes are saved together this long after the first of them: a bulk job or a burst of
# calls costs one write, and a stop without warning (SIGKILL) loses at most this much.
# A large org waits twice as long as its last save took, so saving takes at most a third
# of the simulator's time.
SAVE_DELAY_SECONDS = 0.25

log = logging.getLogger("sfsim")


class StateFileError(Exception):
    """The state file exists but does not hold an org this simulator can load."""


def spool_dir_for(path: Path) -> Path:
    """The folder of a state file's uploads and result files."""
    return path.with_name(f"{path.stem}-files")


def snapshot(sim: Simulator) -> dict[str, Any]:
    """The simulator's state, taken between internal batches of running ingest jobs."""
    with sim.org.lock, sim.jobs.lock, sim.query_jobs.lock, sim.lock:
        return {
            "format": FORMAT,
            "org": sim.org.to_state(),
            "ingest_jobs": sim.jobs.to_state(),
            "query_jobs": sim.query_jobs.to_state(),
            "tokens": dict(sim.tokens),
            "api_calls": sim.api_calls,
            "query_cursors": {cursor_id: records
                              for cursor_id, (records, _) in sim.query_cursors.items()},
        }


def read_state_file(path: Path) -> dict[str, Any] | None:
    """The saved state; None when there is no file yet (a new org)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateFileError(f"the state file {path} cannot be read: {error}") from None
    try:
        saved = json.loads(text)
    except ValueError as error:
        raise _not_a_state_file(path, f"not JSON: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise _not_a_state_file(path, f"format {found!r}, expected {FORMAT!r}")
    return saved


def restore(sim: Simulator, saved: dict[str, Any], path: Path) -> None:
    """Put the saved org, jobs, tokens, cursors and usage into a new simulator."""
    try:
        sim.org.restore(saved["org"])
        sim.jobs.restore(saved["ingest_jobs"])
        sim.query_jobs.restore(saved["query_jobs"])
        sim.tokens = {str(token): float(expires) for token, expires in saved["tokens"].items()}
        sim.api_calls = int(saved["api_calls"])
        sim.query_cursors = {str(cursor_id): (records, len(records))
                             for cursor_id, records in saved["query_cursors"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _not_a_state_file(path, f"{type(error).__name__}: {error}") from None


def remove_stray_files(spool_dir: Path, kept: set[str]) -> None:
    """Delete the spool files no saved job names: the stop came before a save took them."""
    for entry in spool_dir.iterdir():
        if entry.is_file() and str(entry) not in kept:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a crash leaves the old file or the new one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


class StateKeeper:
    """Writes the simulator's state to its file after changes (debounced) and at close."""

    def __init__(self, path: Path, take_snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self.take_snapshot = take_snapshot
        self.changed = threading.Event()
        self.closing = threading.Event()
        # One save at a time, so that an older snapshot never replaces a newer one.
        self.saving = threading.Lock()
        self.thread = threading.Thread(target=self._save_after_changes, daemon=True,
                                       name="sfsim-state")

    def start(self) -> None:
        self.thread.start()

    def mark_changed(self) -> None:
        self.changed.set()

    def save(self) -> None:
        with self.saving:
            body = self.take_snapshot()
            write_atomically(self.path, json.dumps(body, separators=(",", ":")).encode())

    def close(self) -> None:
        """Stop saving in the background and save the state one last time."""
        self.closing.set()
        self.changed.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.save()

    def _save_after_changes(self) -> None:
        delay = SAVE_DELAY_SECONDS
        while True:
            self.changed.wait()
            if self.closing.wait(delay):
                return
            self.changed.clear()
            started = time.monotonic()
            try:
                self.save()
            # The simulator keeps serving; the next change tries again.
            except (OSError, ValueError, TypeError):
                log.exception("sfsim: the org could not be saved to %s", self.path)
            delay = max(SAVE_DELAY_SECONDS, 2 * (time.monotonic() - started))


def _not_a_state_file(path: Path, reason: str) -> StateFileError:
    return StateFileError(
        f"the state file {path} does not hold a simulator org ({reason}); move it away to "
        "start with an empty org"
    )
