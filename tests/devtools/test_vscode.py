"""The VS Code debug set-up starts what `make run` starts, with the host under the debugger."""

from __future__ import annotations

import json

from devtools.run_local import HOST_ENV_FILE
from devtools.services import REPO_ROOT


def test_the_debug_configuration_runs_devhost_after_the_services_task():
    launch = json.loads((REPO_ROOT / ".vscode" / "launch.json").read_text())
    tasks = json.loads((REPO_ROOT / ".vscode" / "tasks.json").read_text())
    [configuration] = launch["configurations"]
    [task] = [task for task in tasks["tasks"] if task["label"] == configuration["preLaunchTask"]]
    assert configuration["module"] == "devhost"
    assert configuration["envFile"] == f"${{workspaceFolder}}/.local/{HOST_ENV_FILE}"
    assert task["args"] == ["-m", "devtools.run_local", "--no-host"]
    assert task["isBackground"] is True
    assert task["problemMatcher"]["background"]["endsPattern"] == "ready: the services"
