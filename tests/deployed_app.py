"""The app as deployed (the repository's function_app.py and host.json) for a test on the
local host: its folder, with a task hub of its own, and the settings every such host needs.

The host resolves each timer's `%SETTING%` from the environment, not from the app's
defaults, so a host of the whole app does not start while one of them is unset. Here they
are set to once a year: a test starts the runs it needs itself (`POST .../run`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from devhost.testing import REPO_ROOT
from shared.config.framework import setting_name
from shared.events.settings import EventQueueSettings
from shared.sync.catalog import JOB_DEFINITIONS

ONCE_A_YEAR = "0 0 0 1 1 *"


def timer_schedule_settings() -> list[str]:
    """The settings the app's timers read as `%SETTING%`: every sync job's, the event
    queue's safety timer."""
    return [*(definition.schedule_setting for definition in JOB_DEFINITIONS),
            setting_name(EventQueueSettings, "safety_schedule")]


def deployed_app_dir(target: Path, hub: str, **durable_task: Any) -> Path:
    """`function_app.py` unmodified, and the repository's host.json with task hub `hub`
    (and `durable_task` over its other durableTask options)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "function_app.py", target / "function_app.py")
    host_json = json.loads((REPO_ROOT / "host.json").read_text(encoding="utf-8"))
    host_json["extensions"]["durableTask"].update(hubName=hub, **durable_task)
    (target / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    return target


def deployed_app_env(storage: str) -> dict[str, str]:
    """The storage connection and every timer schedule (once a year): what a test adds
    its own settings to."""
    return {"AzureWebJobsStorage": storage,
            **dict.fromkeys(timer_schedule_settings(), ONCE_A_YEAR)}
