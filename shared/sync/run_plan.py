"""The run orchestration's bookkeeping as pure functions: its input, its progress, retries.

The orchestration's input carries only names, ids, times, counts and the encoded upper
bound (a cursor value): never a row, never a secret. It is what `continue_as_new` hands
to the next generation, and what the starter reads back to know when a run started.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

MAX_RETRY_DELAY = timedelta(minutes=5)


def new_run_input(
    job: str, run_id: str, started_at: datetime, *, page_attempts: int,
    page_retry_delay: float, pages_per_generation: int,
) -> dict[str, Any]:
    return {
        "job": job,
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "upper_bound": None,
        "pages": 0,
        "rows": 0,
        "delivered": 0,
        "dead_lettered": 0,
        "generation": 0,
        "page_attempts": page_attempts,
        "page_retry_delay": page_retry_delay,
        "pages_per_generation": pages_per_generation,
    }


def add_page(run: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """The run's totals after a page the sink accepted."""
    return {
        **run,
        "pages": run["pages"] + (1 if page["rows"] else 0),
        "rows": run["rows"] + page["rows"],
        "delivered": run["delivered"] + page["delivered"],
        "dead_lettered": run["dead_lettered"] + page["dead_lettered"],
    }


def next_generation(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "generation": run["generation"] + 1}


def retry_delay(run: dict[str, Any], failed_attempts: int) -> timedelta | None:
    """Delay before the next try of a page after `failed_attempts` tries; None: give up."""
    if failed_attempts >= run["page_attempts"]:
        return None
    delay = timedelta(seconds=run["page_retry_delay"] * 2 ** (failed_attempts - 1))
    return min(delay, MAX_RETRY_DELAY)


def totals(run: dict[str, Any]) -> dict[str, int]:
    return {name: run[name] for name in ("pages", "rows", "delivered", "dead_lettered")}


def custom_status(run: dict[str, Any], phase: str) -> dict[str, Any]:
    """What the monitoring API shows while a run executes (small, no secrets)."""
    return {
        "job": run["job"], "run_id": run["run_id"], "started_at": run["started_at"],
        "phase": phase, "generation": run["generation"], **totals(run),
    }
