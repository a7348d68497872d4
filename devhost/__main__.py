"""`python -m devhost [app-dir] [--port N] [--verbose]`: run a v2-model Python function app
locally."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from devhost.host import FunctionHost
from devhost.host_config import StartupError, local_http_port
from devhost.log_format import configure_logging


async def _serve(host: FunctionHost) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, host.stopping.set)
    try:
        await host.start()
        await host.stopping.wait()
    finally:
        await host.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost", description="Run a v2-model Python function app locally."
    )
    parser.add_argument("app_dir", nargs="?", default=".", help="app folder (default: .)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default: Host.LocalHttpPort of local.settings.json, else 7071)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="also log every orchestrator episode, not only the one that ends it",
    )
    arguments = parser.parse_args(argv)
    configure_logging(arguments.verbose)
    app_dir = Path(arguments.app_dir).resolve()
    # The Python worker does not run in the app folder but in its own install folder, and
    # azure.durable_functions reads ./host.json strictly when imported: published samples
    # whose host.json only the host's lenient reader accepts rely on that.
    os.chdir(Path(__file__).resolve().parent)
    port = arguments.port if arguments.port is not None else local_http_port(app_dir) or 7071
    host = FunctionHost(app_dir=app_dir, port=port)
    try:
        asyncio.run(_serve(host))
    except StartupError as error:
        logging.getLogger("devhost").error("The host did not start: %s", error)
        return 1
    except OSError as error:
        logging.getLogger("devhost").error("The host did not start: %s", error)
        return 1
    except Exception:
        logging.getLogger("devhost").exception("The host stopped after an internal error")
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return host.exit_code


if __name__ == "__main__":
    sys.exit(main())
