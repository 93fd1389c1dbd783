"""`edge-recorder fleet serve` (the web dashboard) and `fleet passwd` (its users file).

The dashboard has its own config file (`/etc/edge-recorder-fleet/fleet.toml`, not the device's);
flags override single keys so a quick look needs no file at all: `fleet serve --broker
mqtt.example` on loopback, or `fleet serve --demo 50` for a local broker and a simulated fleet.
Everything else lives in `edge_recorder.dashboard`, imported only when these commands run
(the `dashboard` extra is not installed on devices).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edge_recorder.config.errors import EX_CONFIG

if TYPE_CHECKING:
    from edge_recorder.dashboard.config import DashboardConfig

DEFAULT_FLEET_CONFIG = Path("/etc/edge-recorder-fleet/fleet.toml")
EXIT_USAGE = 2


def add_serve_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` and `passwd` under `fleet`."""
    serve = sub.add_parser(
        "serve",
        help="web dashboard of the fleet (problems first, live, history, commands)",
        description="Serve the fleet dashboard. Listens on 127.0.0.1:8470 by default; "
        "beyond loopback it requires HTTPS (http.tls_cert_file/tls_key_file) and a login "
        "(auth.users_file or auth.proxy_user_header), else it exits 78.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="F",
        help=f"dashboard config (default {DEFAULT_FLEET_CONFIG} if it exists)",
    )
    serve.add_argument("--listen", metavar="HOST:PORT", help="overrides http.host/http.port")
    serve.add_argument("--broker", metavar="HOST[:PORT]", help="overrides mqtt.host/mqtt.port")
    serve.add_argument("--prefix", metavar="P", help="overrides mqtt.topic_prefix")
    serve.add_argument("--history", type=Path, metavar="F", help="overrides history.path")
    serve.add_argument(
        "--demo",
        type=int,
        metavar="N",
        help="start a local mosquitto and N simulated devices (history in a temp dir)",
    )
    serve.set_defaults(func=run_serve)

    passwd = sub.add_parser(
        "passwd",
        help="add or change a dashboard login (argon2 hash in the users file)",
        description="Write USER with an argon2id hash of the password into FILE (created "
        "0600). The password is read from stdin when it is not a terminal, else prompted "
        "twice.",
    )
    passwd.add_argument("file", type=Path, metavar="FILE", help="users file (auth.users_file)")
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--role", choices=("viewer", "operator"), default="viewer")
    passwd.set_defaults(func=run_passwd)


def split_host_port(text: str, default_port: int | None) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` or `:port` (empty host: every interface)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, dict[str, object]] = {}
    if args.listen:
        host, port = split_host_port(args.listen, None)
        overrides.setdefault("http", {})["host"] = host
        if port is not None:
            overrides["http"]["port"] = port
    if args.broker:
        host, port = split_host_port(args.broker, None)
        overrides.setdefault("mqtt", {})["host"] = host
        if port is not None:
            overrides["mqtt"]["port"] = port
    if args.prefix:
        overrides.setdefault("mqtt", {})["topic_prefix"] = args.prefix
    if args.history:
        overrides.setdefault("history", {})["path"] = str(args.history)
    return dict(overrides)


def _load(args: argparse.Namespace, extra: dict[str, object]) -> DashboardConfig:
    from edge_recorder.config.errors import ConfigError, print_config_error
    from edge_recorder.dashboard.config import load_dashboard_config

    path: Path | None = args.config
    if path is None and DEFAULT_FLEET_CONFIG.exists():
        path = DEFAULT_FLEET_CONFIG
    try:
        overrides = _overrides(args)
    except ValueError as exc:
        print(f"edge-recorder fleet serve: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    for key, value in extra.items():
        current = overrides.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            overrides[key] = {**value, **current}  # flags win over the demo's choices
        elif key not in overrides:
            overrides[key] = value
    try:
        return load_dashboard_config(path, overrides)
    except ConfigError as error:
        print_config_error(error)
        raise SystemExit(EX_CONFIG) from None


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from edge_recorder.dashboard.serve import serve

    def ready(url: str) -> None:
        print(f"dashboard: {url}", flush=True)

    if args.demo is None:
        cfg = _load(args, {})
        return asyncio.run(serve(cfg, ready=ready))
    if args.demo < 1:
        print("edge-recorder fleet serve: --demo needs at least one device", file=sys.stderr)
        return EXIT_USAGE
    with _demo(args) as cfg:
        return asyncio.run(serve(cfg, ready=ready))


@contextmanager
def _demo(args: argparse.Namespace) -> Iterator[DashboardConfig]:
    """A local mosquitto, N simulated devices and a backfilled history in a temp dir."""
    from edge_recorder.dashboard.broker import Broker, BrokerError
    from edge_recorder.dashboard.history import History
    from edge_recorder.dashboard.simulate import SimulatedFleet

    with tempfile.TemporaryDirectory(prefix="edge-recorder-fleet-demo-") as temp:
        work = Path(temp)
        broker = Broker(workdir=work / "mosquitto", detach=True)
        try:
            broker.start()
        except BrokerError as exc:
            print(f"edge-recorder fleet serve --demo: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        fleet: SimulatedFleet | None = None
        try:
            cfg = _load(
                args,
                {
                    "mqtt": {"host": broker.host, "port": broker.port, "tls": False},
                    "history": {"path": str(work / "history.sqlite3")},
                    "audit_log": str(work / "audit.log"),
                },
            )
            history = History(
                cfg.history.path,
                retention_s=cfg.history.retention_days * 86400,
                sample_s=cfg.history.sample_s,
            )
            history.open()
            fleet = SimulatedFleet(
                cfg.mqtt.host, cfg.mqtt.effective_port, cfg.mqtt.topic_prefix, count=args.demo
            )
            fleet.backfill(history, hours=24)
            history.close()
            fleet.start()
            print(
                f"demo: {args.demo} simulated devices on mqtt://{broker.host}:{broker.port}",
                flush=True,
            )
            yield cfg
        finally:
            if fleet is not None:
                fleet.stop()
            broker.stop()


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        print("edge-recorder fleet passwd: the passwords differ", file=sys.stderr)
        raise SystemExit(1)
    return first


def run_passwd(args: argparse.Namespace) -> int:
    from edge_recorder.dashboard.auth import UsersFileError, write_user

    password = _read_password()
    if len(password) < 8:
        print("edge-recorder fleet passwd: use at least 8 characters", file=sys.stderr)
        return 1
    try:
        write_user(args.file, args.user, args.role, password)
    except UsersFileError as exc:
        print(f"edge-recorder fleet passwd: {args.file}: {exc}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"edge-recorder fleet passwd: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"{args.user} ({args.role}) written to {args.file}")
    return 0
