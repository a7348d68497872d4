"""Fixtures that run sample apps under `python -m devhost` (see devhost/testing.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devhost.engine import DurableEngine, EngineFactory
from devhost.testing import RunningHost, start_host

APPS = Path(__file__).parent / "apps"
DURABLE_ENGINES = ["memory", "engine"]


def sample_app(name: str) -> Path:
    path = APPS / name
    assert (path / "function_app.py").is_file(), f"no sample app {name!r}"
    return path


@pytest.fixture
def start_devhost(tmp_path: Path) -> Iterator[Callable[..., RunningHost]]:
    """Start hosts for one test; every host it started is stopped afterwards."""
    hosts: list[RunningHost] = []

    def start(app_dir: Path, env: dict[str, str] | None = None) -> RunningHost:
        host = start_host(app_dir, env=env, log_path=tmp_path / f"host-{len(hosts)}.log")
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture(scope="session")
def http_routes_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    log_path = tmp_path_factory.mktemp("devhost") / "http_routes.log"
    host = start_host(sample_app("http_routes"), log_path=log_path)
    yield host
    host.stop()


class InProcessHost:
    """A FunctionHost on its own event-loop thread, with a replaceable engine."""

    def __init__(self, app_dir: Path, engine_factory: EngineFactory,
                 env: dict[str, str]) -> None:
        import asyncio
        import os
        import threading

        from devhost.host import FunctionHost
        from devhost.testing import free_port

        # The in-process host reads its settings from this process's environment; stop()
        # puts it back, so later tests do not inherit this host's storage and keys.
        self._saved_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        self.master_key = env["DEVHOST_MASTER_KEY"]
        self.host = FunctionHost(app_dir=app_dir, port=free_port(),
                                 engine_factory=engine_factory)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.host.start(), self.loop).result(timeout=60)
        self.base_url = f"http://127.0.0.1:{self.host.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def stop(self) -> None:
        import asyncio
        import os

        from azure.durable_functions.models.utils import http_utils

        asyncio.run_coroutine_threadsafe(self.host.stop(), self.loop).result(timeout=60)
        # The SDK keeps one client session per process; close it on the loop that made it.
        asyncio.run_coroutine_threadsafe(http_utils._close_session(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session", params=DURABLE_ENGINES)
def durable_host(request: pytest.FixtureRequest) -> Iterator[InProcessHost]:
    """The durable_client_api sample, on the in-memory engine (isolates the shell) and on
    the real engine with Azurite. One at a time: the SDK's client session is global."""
    if request.param == "memory":
        from tests.devhost import memory_engine

        engine_factory: EngineFactory = memory_engine.DurableEngine
        storage = "UseDevelopmentStorage=true"
    else:
        engine_factory = DurableEngine
        storage = request.getfixturevalue("azurite").connection_string
    host = InProcessHost(
        sample_app("durable_client_api"),
        engine_factory,
        {
            "AzureWebJobsStorage": storage,
            "DEVHOST_MASTER_KEY": f"{request.param}-master",
            "DEVHOST_FUNCTION_KEY": f"{request.param}-function",
        },
    )
    yield host
    host.stop()
