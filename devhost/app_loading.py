"""Find a v2-model function app the way the Python worker indexes it.

The worker imports `function_app.py` from the app folder (the script root is on sys.path),
looks for exactly one module-level `FunctionRegister` instance (FunctionApp, DFApp, ...)
and asks it for its functions. Each function is described to the host by its raw binding
JSON; this module reads the same JSON, so what the host sees is what Azure would see.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost.host_config import StartupError

SCRIPT_FILE_NAME = "function_app.py"

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
DURABLE_CLIENT = "durableClient"
HTTP_OUTPUT = "http"
SUPPORTED_TRIGGERS = {HTTP_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER}


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the app: its name, bindings (as the host reads them) and code."""

    name: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.user_function).parameters)

    def bindings_of_type(self, binding_type: str) -> list[dict[str, Any]]:
        return [binding for binding in self.bindings if binding.get("type") == binding_type]

    @property
    def unsupported_bindings(self) -> list[str]:
        known = SUPPORTED_TRIGGERS | {DURABLE_CLIENT, HTTP_OUTPUT}
        return [
            str(binding.get("type"))
            for binding in self.bindings
            if binding.get("type") not in known
        ]


def _find_function_register(module: Any, script: Path) -> func.FunctionRegister:
    registers = list(
        {
            id(value): value
            for value in vars(module).values()
            if isinstance(value, func.FunctionRegister)
        }.values()
    )
    if not registers:
        raise StartupError(
            f"{script.name} defines no module-level FunctionApp (or DFApp) instance; "
            "create one with `app = func.FunctionApp()`"
        )
    if len(registers) > 1:
        raise StartupError(
            f"{script.name} defines {len(registers)} module-level FunctionApp instances; "
            "the Functions host accepts exactly one"
        )
    return registers[0]


def load_function_app(app_dir: Path) -> list[FunctionSpec]:
    """Import `function_app.py` from `app_dir` and describe each of its functions.

    Raises StartupError naming the problem when the script is missing, fails to import or
    declares something the host cannot run.
    """
    script = app_dir / SCRIPT_FILE_NAME
    if not script.is_file():
        raise StartupError(f"no {SCRIPT_FILE_NAME} in {app_dir}: is this a v2-model Python app?")
    app_path = str(app_dir.resolve())
    if app_path not in sys.path:
        sys.path.insert(0, app_path)
    sys.modules.pop(script.stem, None)
    try:
        module = importlib.import_module(script.stem)
    except Exception as error:
        raise StartupError(
            f"importing {SCRIPT_FILE_NAME} failed: {type(error).__name__}: {error}"
        ) from error
    register = _find_function_register(module, script)
    try:
        functions = register.get_functions()
    except Exception as error:
        raise StartupError(f"the app's functions are invalid: {error}") from error

    specs: list[FunctionSpec] = []
    for function in functions:
        bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
        triggers = [binding for binding in bindings if binding.get("type", "").endswith("Trigger")]
        name = function.get_function_name() or function.get_user_function().__name__
        if len(triggers) != 1:
            raise StartupError(f"function {name!r} must have exactly one trigger")
        specs.append(
            FunctionSpec(
                name=name,
                trigger=triggers[0],
                bindings=bindings,
                user_function=function.get_user_function(),
            )
        )
    names = [spec.name.lower() for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StartupError(f"function names must be unique; repeated: {', '.join(duplicates)}")
    return specs
