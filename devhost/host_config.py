"""What the host reads from the app folder besides code: host.json and local.settings.json."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost")

DEFAULT_HUB_NAME = "TestHubName"
NON_RUNNING_STATES = "NonRunningStates"
ANY_STATE = "AnyState"


class StartupError(RuntimeError):
    """The host cannot start; the message says what is wrong and where."""


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    hub_name: str = DEFAULT_HUB_NAME
    max_concurrent_activities: int = 10
    max_concurrent_orchestrators: int = 10
    overridable_existing_instance_states: str = NON_RUNNING_STATES
    function_timeout: timedelta | None = None  # None: no limit


@dataclass(frozen=True)
class CorsPolicy:
    """`Host.CORS` / `Host.CORSCredentials` of local.settings.json, as `func start` reads
    them: comma-separated origins, `*` for any."""

    origins: tuple[str, ...]
    allow_credentials: bool = False

    def allows(self, origin: str) -> bool:
        return "*" in self.origins or origin.rstrip("/").lower() in self.origins


_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def read_lenient_json(path: Path) -> Any:
    """Read JSON the way the Functions host reads its config files.

    Its JSON reader accepts comments and stops after the first complete value; some
    published samples rely on that (a host.json with a second object pasted after the
    first), so this reads the first value and warns about anything after it.
    """
    text = path.read_text(encoding="utf-8-sig")
    text = _COMMENT_OR_STRING.sub(
        lambda match: match.group(0) if match.group(0).startswith('"') else "", text
    )
    document, end = json.JSONDecoder().raw_decode(text.lstrip())
    if text.lstrip()[end:].strip():
        log.warning("%s: ignoring text after the first JSON value, as the Functions host does",
                    path.name)
    return document


_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")


def _function_timeout(document: dict[str, Any]) -> timedelta | None:
    """host.json `functionTimeout`: a TimeSpan `[d.]hh:mm:ss`, or -1 for no limit."""
    value = document.get("functionTimeout")
    if value is None or str(value).strip() == "-1":
        return None
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise StartupError(
            f"host.json functionTimeout must be a TimeSpan hh:mm:ss (or -1), got {value!r}"
        )
    timeout = timedelta(days=int(match.group("days") or 0), hours=int(match.group("h")),
                        minutes=int(match.group("m")), seconds=float(match.group("s")))
    if timeout <= timedelta(0):
        raise StartupError(f"host.json functionTimeout must be positive, got {value!r}")
    return timeout


def function_is_disabled(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """`AzureWebJobs.<name>.Disabled` (or `AzureWebJobs_<name>_Disabled`, the form Linux
    plans use) set to true or 1, as the Functions host reads it."""
    environ = os.environ if environ is None else environ
    for setting in (f"AzureWebJobs.{name}.Disabled", f"AzureWebJobs_{name}_Disabled"):
        value = environ.get(setting, "").strip().lower()
        if value in ("true", "1"):
            return True
    return False


def _positive_int(section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StartupError(
            f"host.json extensions.durableTask.{key} must be a positive integer, got {value!r}"
        )
    return value


def _resolve_setting_reference(value: str) -> str:
    """`%NAME%` in host.json means "the app setting NAME", as in the real host."""
    if len(value) > 2 and value.startswith("%") and value.endswith("%"):
        name = value[1:-1]
        if name not in os.environ:
            raise StartupError(f"host.json refers to app setting {name!r}, which is not set")
        return os.environ[name]
    return value


def read_host_config(app_dir: Path) -> HostConfig:
    """Read host.json (optional; defaults as in Azure) and validate the parts we honour."""
    path = app_dir / "host.json"
    if not path.exists():
        return HostConfig()
    try:
        document = read_lenient_json(path)
    except (OSError, ValueError) as error:
        raise StartupError(f"host.json is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise StartupError("host.json must hold a JSON object")
    extensions = document.get("extensions") or {}
    http = extensions.get("http") or {}
    durable = extensions.get("durableTask") or {}
    route_prefix = http.get("routePrefix", "api")
    if not isinstance(route_prefix, str):
        raise StartupError("host.json extensions.http.routePrefix must be a string")
    hub_name = _resolve_setting_reference(str(durable.get("hubName", DEFAULT_HUB_NAME)))
    states = durable.get("overridableExistingInstanceStates", NON_RUNNING_STATES)
    if states not in (NON_RUNNING_STATES, ANY_STATE):
        raise StartupError(
            "host.json extensions.durableTask.overridableExistingInstanceStates must be "
            f"{NON_RUNNING_STATES!r} or {ANY_STATE!r}, got {states!r}"
        )
    return HostConfig(
        route_prefix=route_prefix.strip("/"),
        hub_name=hub_name,
        max_concurrent_activities=_positive_int(durable, "maxConcurrentActivityFunctions", 10),
        max_concurrent_orchestrators=_positive_int(
            durable, "maxConcurrentOrchestratorFunctions", 10
        ),
        overridable_existing_instance_states=states,
        function_timeout=_function_timeout(document),
    )


def _local_host_section(app_dir: Path) -> dict[str, Any]:
    """The `Host` object of local.settings.json (empty when absent or unreadable)."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return {}
    try:
        document = read_lenient_json(path)
    except (OSError, ValueError):
        return {}  # load_local_settings reports a broken file
    section = document.get("Host") if isinstance(document, dict) else None
    return section if isinstance(section, dict) else {}


def local_http_port(app_dir: Path) -> int | None:
    """`Host.LocalHttpPort` of local.settings.json, which `func start` also honours."""
    port = _local_host_section(app_dir).get("LocalHttpPort")
    return port if isinstance(port, int) and 0 < port < 65536 else None


def local_cors_policy(app_dir: Path) -> CorsPolicy | None:
    """`Host.CORS` of local.settings.json; None when it is not set (no CORS headers)."""
    section = _local_host_section(app_dir)
    origins = tuple(
        origin.strip().rstrip("/").lower()
        for origin in str(section.get("CORS") or "").split(",")
        if origin.strip()
    )
    if not origins:
        return None
    credentials = section.get("CORSCredentials") in (True, "true", "True")
    if credentials and "*" in origins:
        raise StartupError(
            "local.settings.json: Host.CORSCredentials cannot be true with Host.CORS \"*\" "
            "(browsers refuse credentials for any origin); list the origins instead"
        )
    return CorsPolicy(origins=origins, allow_credentials=credentials)


def load_local_settings(app_dir: Path) -> list[str]:
    """Copy local.settings.json `Values` into the environment without overriding it.

    Returns the names that were set. A missing file is fine (as with `func start`).
    """
    path = app_dir / "local.settings.json"
    if not path.exists():
        return []
    try:
        document = read_lenient_json(path)
    except (OSError, ValueError) as error:
        raise StartupError(f"local.settings.json is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise StartupError("local.settings.json must hold a JSON object")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise StartupError("local.settings.json `Values` must be an object of settings")
    applied = []
    for name, value in values.items():
        if name not in os.environ and value is not None:
            os.environ[name] = str(value)
            applied.append(name)
    return applied


WORKER_PROCESS_COUNT_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_WORKER_PROCESSES = 10


def worker_process_count(environ: Mapping[str, str] | None = None) -> int:
    """`FUNCTIONS_WORKER_PROCESS_COUNT`: language worker processes per host, 1 (the
    default) to 10, as the Functions host accepts it."""
    environ = os.environ if environ is None else environ
    value = environ.get(WORKER_PROCESS_COUNT_SETTING, "").strip()
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKER_PROCESSES:
        raise StartupError(
            f"app setting {WORKER_PROCESS_COUNT_SETTING} must be an integer from 1 to "
            f"{MAX_WORKER_PROCESSES}, got {value!r}"
        )
    return int(value)
