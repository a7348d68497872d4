"""`make run`: the app on its embedded default, entirely on this machine.

Starts Azurite (state kept in .local/azurite so instances survive a restart), the
Salesforce simulator and the local Functions host serving function_app.py, with the
settings of local.settings.json (created from local.settings.example.json on first run)
pointed at those services. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devtools import services

LOCAL_STATE = services.REPO_ROOT / ".local"
HOST_PORT = int(os.environ.get("FUNCTIONS_PORT", "7071"))
SFSIM_PORT = int(os.environ.get("SFSIM_PORT", "8787"))


def ensure_local_settings() -> Path:
    settings_file = services.REPO_ROOT / "local.settings.json"
    if not settings_file.exists():
        shutil.copy(services.REPO_ROOT / "local.settings.example.json", settings_file)
        print(f"created {settings_file.name} from local.settings.example.json")
    return settings_file


def start_azurite() -> services.Azurite:
    # The well-known ports let `UseDevelopmentStorage=true` work for other tools too
    # (Azure Storage Explorer); fall back to free ports when something else holds them.
    wanted = {"blob_port": 10000, "queue_port": 10001, "table_port": 10002}
    if not all(_port_is_free(port) for port in wanted.values()):
        wanted = {}
    return services.start_azurite(
        LOCAL_STATE / "azurite", log_file=LOCAL_STATE / "azurite.log", **wanted
    )


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((services.LOOPBACK, port))
        except OSError:
            return False
    return True


def embedded_source_settings(env: dict[str, str], local_values: dict) -> dict[str, str]:
    """The example job's SQLite connection with an absolute Database path.

    The Python worker does not run in the app folder (devhost, like Azure, starts it
    elsewhere), so the relative path of local.settings.example.json is resolved here, for
    the embedded source and the host alike. Other databases are left as configured.
    """
    from devtools import embedded_source

    name = embedded_source.CONNECTION_SETTING
    connection = env.get(name, local_values.get(name))
    if connection and "sqlite" not in connection.lower():
        return {}
    path = embedded_source.database_path({name: connection} if connection else {}, Path())
    if not path.is_absolute():
        path = services.REPO_ROOT / path
    return {name: f"Driver={{SQLite3}};Database={path};"}


def module_exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main() -> int:
    LOCAL_STATE.mkdir(exist_ok=True)
    local_values = json.loads(ensure_local_settings().read_text()).get("Values", {})
    started: list[subprocess.Popen] = []
    azurite = start_azurite()
    print(f"Azurite: blob {azurite.blob_endpoint}, queue {azurite.queue_endpoint}, "
          f"table {azurite.table_endpoint}")
    env = dict(os.environ, AzureWebJobsStorage=azurite.connection_string)

    if module_exists("sfsim"):
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "sfsim", "--port", str(SFSIM_PORT)],
                env=env, start_new_session=True,
            )
        )
        # The simulator's documented defaults (sfsim/README.md), unless local.settings.json
        # or the environment points the app at a real org.
        simulator_defaults = {
            "SALESFORCE_LOGIN_URL": f"http://{services.LOOPBACK}:{SFSIM_PORT}",
            "SALESFORCE_CLIENT_ID": "sfsim-client-id",
            "SALESFORCE_CLIENT_SECRET": "sfsim-client-secret",
        }
        for name, value in simulator_defaults.items():
            if name not in local_values:
                env.setdefault(name, value)
    else:
        print("Salesforce simulator (sfsim/) is not part of this checkout yet")

    if module_exists("devtools.embedded_source"):
        env.update(embedded_source_settings(env, local_values))
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "devtools.embedded_source"],
                env=env, start_new_session=True,
            )
        )

    if not module_exists("devhost"):
        print("The local Functions host (devhost/) is not part of this checkout yet: "
              "services are up; press Ctrl-C to stop them.")
        print(json.dumps({"AzureWebJobsStorage": azurite.connection_string}, indent=2))
        host = None
    else:
        host = subprocess.Popen(
            [sys.executable, "-m", "devhost", str(services.REPO_ROOT), "--port", str(HOST_PORT)],
            env=env, start_new_session=True,
        )
        started.append(host)

    stop = services.stop_on_signals()
    try:
        while not stop.wait(0.5):
            if host is not None and host.poll() is not None:
                print(f"the local host exited with code {host.returncode}")
                return host.returncode or 1
    finally:
        for process in reversed(started):
            services.stop_process_group(process)
        azurite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
