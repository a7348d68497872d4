"""The local Functions host: loads an app folder and serves it until stopped.

Start-up order mirrors the real host: app settings (local.settings.json, then Key Vault
references), host.json, the function index, then listeners (HTTP, the durable engine and
its RPC endpoint, timers). Any problem before listening raises StartupError and nothing
is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.functions.timer import TimerRequest

from devhost.activity_worker import WorkerSetup
from devhost.admin_api import AdminFunctions
from devhost.app_loading import (
    ACTIVITY_TRIGGER,
    DURABLE_CLIENT,
    ENTITY_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    TIMER_TRIGGER,
    FunctionSpec,
    load_function_app,
)
from devhost.durable_api import DurableHttpApi
from devhost.durable_endpoints import RPC_PATH, WEBHOOK_PATH, DurableEndpoints
from devhost.engine import DurableEngine, DurableEngineApi, EngineFactory
from devhost.host_config import (
    HostConfig,
    StartupError,
    function_is_disabled,
    load_local_settings,
    local_cors_policy,
    read_host_config,
    worker_process_count,
)
from devhost.http_server import HttpFront
from devhost.invocation import FunctionInvoker
from devhost.key_vault import resolve_key_vault_references
from devhost.keys import HostKeys
from devhost.storage_account import STORAGE_SETTING, StorageAccount
from devhost.timers import (
    ScheduleMonitor,
    TimerLocks,
    TimerRunner,
    TimerSchedule,
    TimerTrigger,
)
from devhost.worker_processes import ActivityWorkers

log = logging.getLogger("devhost")

LOOPBACK = "127.0.0.1"


def uses_durable(functions: list[FunctionSpec]) -> bool:
    return any(
        spec.trigger_type in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER)
        or spec.bindings_of_type(DURABLE_CLIENT)
        for spec in functions
    )


@dataclass
class FunctionHost:
    """One running host. `engine_factory` builds the durable engine (default:
    devhost.engine.DurableEngine; tests pass a stand-in)."""

    app_dir: Path
    port: int = 7071
    engine_factory: EngineFactory | None = None
    config: HostConfig = field(init=False)
    functions: list[FunctionSpec] = field(init=False)
    keys: HostKeys = field(init=False)

    def __post_init__(self) -> None:
        self.app_dir = Path(self.app_dir).resolve()
        self._runners: list[web.AppRunner] = []
        self._engine: DurableEngineApi | None = None
        self._timers: TimerRunner | None = None
        self._invoker: FunctionInvoker | None = None
        self._workers: ActivityWorkers | None = None
        self.rpc_port: int | None = None
        # Set by a signal, or by the host itself when it cannot go on (its activity worker
        # processes keep dying); `exit_code` says which.
        self.stopping = asyncio.Event()
        self.exit_code = 0

    def prepare(self) -> None:
        """Everything that can fail before listening: settings, host.json, the app."""
        load_local_settings(self.app_dir)
        resolve_key_vault_references()
        self.config = read_host_config(self.app_dir)
        self.worker_processes = worker_process_count()
        self.functions = load_function_app(self.app_dir)
        self.keys = HostKeys.from_environment()
        self._cors = local_cors_policy(self.app_dir)
        self.disabled = frozenset(
            spec.name for spec in self.functions if function_is_disabled(spec.name)
        )
        self._timer_triggers = [
            TimerTrigger(
                function_name=spec.name,
                schedule=TimerSchedule.parse(str(spec.trigger.get("schedule", "")), spec.name),
                run_on_startup=bool(spec.trigger.get("runOnStartup", False)),
                use_monitor=bool(spec.trigger.get("useMonitor", True)),
            )
            for spec in self.functions
            if spec.trigger_type == TIMER_TRIGGER and spec.name not in self.disabled
        ]
        for spec in self.functions:
            if spec.trigger_type == ENTITY_TRIGGER:
                log.warning(
                    "function %s is a durable entity: durable entities are not supported "
                    "by this host; orchestrations and clients that call it fail",
                    spec.name,
                )
                continue
            for binding_type in spec.unsupported_bindings:
                log.warning(
                    "function %s: binding type %r is not supported by this host; an "
                    "invocation that needs it fails", spec.name, binding_type,
                )
        self._storage = StorageAccount.from_settings(STORAGE_SETTING)
        if uses_durable(self.functions):
            if self._storage is None:
                raise StartupError(
                    f"app setting {STORAGE_SETTING!r} is not set: Durable Functions keep "
                    "their state in that storage account (use UseDevelopmentStorage=true "
                    "for Azurite)"
                )
            self._storage.require("blob", "table")
        elif self._timer_triggers and self._storage is not None:
            self._storage.require("blob")

    async def _listen(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, port)
        await site.start()
        self._runners.append(runner)
        addresses = runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def start(self) -> None:
        self.prepare()
        # The port listens first (port 0 is only known then, and bindings carry it); the
        # front answers 503 / holds requests until everything below has started.
        self.front = HttpFront(
            functions=self.functions,
            route_prefix=self.config.route_prefix,
            keys=self.keys,
            invoke=self._invoke_function,
            durable_api=None,
            host_id=self._host_id(),
            disabled=self.disabled,
            cors=self._cors,
        )
        self.port = await self._listen(self.front.application(), self.port)
        endpoints = None
        if uses_durable(self.functions):
            self.rpc_port = await self._listen(self._rpc_application(), 0)
            endpoints = DurableEndpoints(
                base_url=f"http://{LOOPBACK}:{self.port}{WEBHOOK_PATH}",
                rpc_base_url=f"http://{LOOPBACK}:{self.rpc_port}{RPC_PATH}/",
                hub_name=self.config.hub_name,
                system_key=self.keys.durable_extension,
            )
        if self.worker_processes > 1 and any(
                spec.trigger_type == ACTIVITY_TRIGGER for spec in self.functions):
            self._workers = ActivityWorkers(self.worker_processes, WorkerSetup(
                app_dir=str(self.app_dir), host_pid=os.getpid(), thread_count=None,
                endpoints=endpoints, verbose=log.isEnabledFor(logging.DEBUG),
            ), on_given_up=self._stop_failed)
            await self._workers.start()
        self._invoker = FunctionInvoker(
            self.functions,
            app_dir=str(self.app_dir),
            durable_client_binding=endpoints.client_binding_json if endpoints else None,
            max_concurrent_activities=self.config.max_concurrent_activities,
            max_concurrent_orchestrators=self.config.max_concurrent_orchestrators,
            function_timeout=self.config.function_timeout,
            disabled=self.disabled,
            activity_runner=self._workers.run_activity if self._workers else None,
            timed_out_elsewhere=(self._workers.restart_after_timeout if self._workers
                                 else None),
        )
        if endpoints is not None:
            assert self._storage is not None, "prepare() refuses a durable app without storage"
            self._engine = (self.engine_factory or DurableEngine)(
                storage_account=self._storage,
                task_hub=self.config.hub_name,
                invoke_orchestrator=self._invoker.invoke_orchestrator,
                invoke_activity=self._invoker.invoke_activity,
                max_concurrent_activities=self.config.max_concurrent_activities,
                max_concurrent_orchestrators=self.config.max_concurrent_orchestrators,
                overridable_existing_instance_states=(
                    self.config.overridable_existing_instance_states
                ),
            )
            # As the extension's start answers it: "doesn't exist, is disabled, or is not an
            # orchestrator function".
            orchestrators = {
                spec.name.lower()
                for spec in self.functions
                if spec.trigger_type == ORCHESTRATION_TRIGGER and spec.name not in self.disabled
            }
            self.front.durable_api = DurableHttpApi(
                self._engine,
                endpoints,
                orchestrator_exists=lambda name: name.lower() in orchestrators,
            )
            await self._engine.start()
        if self._timer_triggers:
            monitor = locks = None
            if self._storage:
                monitor = ScheduleMonitor(self._storage, host_id=self._host_id())
                locks = TimerLocks(self._storage, host_id=self._host_id())
            self._timers = TimerRunner(
                self._timer_triggers, self._invoke_timer, monitor, locks
            )
            self._timers.start()
        self.front.admin.functions = AdminFunctions(
            timer_names={spec.name.lower(): spec.name for spec in self.functions
                         if spec.trigger_type == TIMER_TRIGGER},
            all_names=frozenset(spec.name.lower() for spec in self.functions),
            run_timer_now=self._run_timer_now,
        )
        self.front.ready.set()
        self.print_function_listing()

    def _rpc_application(self) -> web.Application:
        """The loopback endpoint the SDK's DurableOrchestrationClient calls (no keys)."""

        async def serve_rpc(request: web.Request) -> web.StreamResponse:
            api = self.front.durable_api
            if api is None or not await self.front.wait_until_ready():
                return web.Response(status=503)
            return await api.dispatch(request, request.match_info.get("tail", ""))

        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", RPC_PATH + "{tail:(/.*)?}", serve_rpc)
        return app

    async def _invoke_function(self, spec: FunctionSpec, trigger_value: Any, *args: Any) -> Any:
        assert self._invoker is not None, "functions run only after start-up"
        return await self._invoker.invoke(spec, trigger_value, *args)

    def _stop_failed(self) -> None:
        self.exit_code = 1
        self.stopping.set()

    def _host_id(self) -> str:
        name = "".join(char for char in self.app_dir.name.lower() if char.isalnum())
        return (name or "app")[:32]

    async def _invoke_timer(self, function_name: str, request: Any) -> None:
        assert self._invoker is not None, "timers start after the invoker"
        spec = self._invoker.function(function_name, TIMER_TRIGGER)
        await self._invoker.invoke(spec, request)

    async def _run_timer_now(self, function_name: str, _input: Any) -> None:
        """A run through the admin API: not past due, with the stored schedule status."""
        assert self._invoker is not None, "the admin API runs functions after start-up"
        spec = self._invoker.function(function_name, TIMER_TRIGGER)
        status = None
        if self._storage is not None:
            monitor = ScheduleMonitor(self._storage, host_id=self._host_id())
            with contextlib.suppress(Exception):  # a run now needs no schedule status
                status = await asyncio.to_thread(monitor.read, function_name)
        request = TimerRequest(past_due=False, schedule_status=status or {},
                               schedule={"AdjustForDST": True})
        with contextlib.suppress(Exception):  # the invoker has logged the failure
            await self._invoker.invoke(spec, request, allow_disabled=True)

    async def stop(self) -> None:
        if hasattr(self, "front"):  # not when start-up failed before listening
            await self.front.admin.close()
        if self._timers is not None:
            await self._timers.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self._engine is not None:
            try:
                await self._engine.stop()
            except Exception:
                log.exception("stopping the durable engine failed")
        if self._workers is not None:
            await self._workers.stop()
        if self._invoker is not None:
            self._invoker.close()
        await close_durable_client_session()

    def print_function_listing(self) -> None:
        lines = ["", "Functions:", ""]
        routes = {route.spec.name: route for route in self.front.routes}
        for spec in self.functions:
            if spec.trigger_type == HTTP_TRIGGER:
                route = routes[spec.name]
                methods = ",".join(route.methods) if len(route.methods) < 8 else "ALL"
                url = f"http://{LOOPBACK}:{self.port}{self.front.function_path(route)}"
                lines.append(f"        {spec.name}: [{methods}] {url}")
            else:
                lines.append(f"        {spec.name}: {spec.trigger_type}")
            if spec.name in self.disabled:
                lines[-1] += f" (disabled by AzureWebJobs.{spec.name}.Disabled)"
            lines.append("")
        if self.rpc_port is not None:
            lines.append(
                f"Durable Functions: task hub {self.config.hub_name}, API "
                f"http://{LOOPBACK}:{self.port}{WEBHOOK_PATH}/instances?code=<master key>"
            )
        if self._storage is not None:
            lines.append(f"Storage ({STORAGE_SETTING}): {self._storage.describe()}")
        if self._workers is not None:
            pids = ", ".join(str(pid) for pid in self._workers.pids)
            lines.append(f"Activities run in {self.worker_processes} worker processes "
                         f"(FUNCTIONS_WORKER_PROCESS_COUNT), pids {pids}")
        lines.append(f"Master key: {self.keys.master}")
        lines.append(f"Function key: {self.keys.function}")
        lines.append(f"Host started on http://{LOOPBACK}:{self.port}")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


async def close_durable_client_session() -> None:
    """Close the durable SDK's process-wide aiohttp session, as a worker that exits would.

    azure-functions-durable keeps one shared session for every client binding and never
    closes it; left open, aiohttp warns about it when the host stops.
    """
    try:
        from azure.durable_functions.models.utils import http_utils
    except ImportError:
        return
    session = getattr(http_utils, "_client_session", None)
    if session is not None and not session.closed:
        await session.close()
