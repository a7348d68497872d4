"""`python -m sfsim [--port N] [--tls DIR] [--schema FILE] [--state FILE]`: serve a simulated
org on loopback."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from sfsim.app import Simulator
from sfsim.schema import ObjectDef, default_objects
from sfsim.server import LOOPBACK, close_open_connections, serve
from sfsim.settings import SimSettings
from sfsim.state import StateFileError


def ensure_jwt_keys(directory: Path) -> str:
    """The connected app's certificate PEM, creating a key pair in `directory` if needed."""
    from sfsim.testing import generate_jwt_key_pair

    key_file, cert_file = directory / "jwt-private-key.pem", directory / "jwt-cert.pem"
    if not (key_file.exists() and cert_file.exists()):
        private_pem, cert_pem = generate_jwt_key_pair()
        directory.mkdir(parents=True, exist_ok=True)
        key_file.write_text(private_pem, encoding="ascii")
        key_file.chmod(0o600)
        cert_file.write_text(cert_pem, encoding="ascii")
    return cert_file.read_text(encoding="ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfsim", description=__doc__)
    parser.add_argument("--port", type=int, default=8787, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--tls", type=Path, metavar="DIR",
                        help="serve HTTPS with a self-signed certificate written to DIR")
    parser.add_argument("--schema", type=Path, metavar="FILE",
                        help="JSON list of objects replacing the default schema")
    parser.add_argument("--job-delay", type=float, help="seconds per ingest job state step")
    parser.add_argument("--token-ttl", type=float, help="access token lifetime in seconds")
    parser.add_argument("--jwt-keys", type=Path, metavar="DIR",
                        help="accept JWT-bearer logins signed by DIR/jwt-private-key.pem "
                        "(created with its certificate DIR/jwt-cert.pem when missing)")
    parser.add_argument("--state", type=Path, metavar="FILE",
                        help="keep the org in FILE across restarts: loaded at start, saved "
                        "shortly after each change and at exit (SIGINT, SIGTERM); default "
                        "SFSIM_STATE, else in memory only")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        settings = SimSettings.from_env()
        if args.job_delay is not None:
            settings.update({"job_delay_seconds": args.job_delay})
        if args.token_ttl is not None:
            settings.update({"token_ttl_seconds": args.token_ttl})
        if args.jwt_keys:
            settings.jwt_certificate_pem = ensure_jwt_keys(args.jwt_keys)
        if args.state is not None:
            settings.update({"state_file": str(args.state)})
        objects = default_objects()
        if args.schema:
            definitions = json.loads(args.schema.read_text(encoding="utf-8"))
            objects = {d["name"]: ObjectDef.from_json(d) for d in definitions}
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"sfsim: invalid configuration: {error}", file=sys.stderr)
        return 2
    try:
        simulator = Simulator(settings, objects)
    except StateFileError as error:
        print(f"sfsim: {error}", file=sys.stderr)
        return 2
    # SIGTERM stops the simulator as Ctrl-C does: the org is saved on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _serve(simulator, args)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        simulator.close()


def _serve(simulator: Simulator, args: argparse.Namespace) -> int:
    settings = simulator.settings
    running = serve(simulator, port=args.port, host=LOOPBACK,
                    tls_dir=args.tls, in_thread=False, quiet=not args.verbose)
    print(f"sfsim: Salesforce simulator listening on {running.base_url}", flush=True)
    print(f"  login URL       {running.base_url}  (token: POST /services/oauth2/token)")
    print(f"  client id       {settings.client_id}")
    print(f"  client secret   {settings.client_secret}")
    print(f"  username        {settings.username}  (JWT sub; password {settings.password})")
    if args.jwt_keys:
        print(f"  JWT key         {args.jwt_keys / 'jwt-private-key.pem'}  (RS256, sub = "
              f"{settings.username})")
    if running.ca_file:
        print(f"  TLS certificate {running.ca_file}  (trust it: REQUESTS_CA_BUNDLE=...)")
    if settings.state_file:
        print(f"  org kept in     {settings.state_file}  (saved after changes and at exit)")
    print(f"  admin           {running.base_url}/_sim/config, /_sim/reset, /_sim/records/<obj>",
          flush=True)
    try:
        running.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        running.server.server_close()
        close_open_connections(running.server)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
