"""The host's log format, shared by the host process and its activity worker processes, so
their lines read as one log."""

from __future__ import annotations

import logging
import sys
import time


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{moment}.{int(record.msecs):03d}Z"


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Every orchestrator episode (replays included) is a DEBUG line of the host.
    logging.getLogger("devhost").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
