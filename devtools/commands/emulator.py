"""`edge-recorder emulator`: a local stand-in for the delivery service, AAS by default.

`--service aas` (gRPC + REST + WebSocket + token issuer), `corti` (REST workflow + /streams),
`dice` (STREAM WebSocket + sign-in) or `aws` (HTTP/2 event stream with SigV4). Prints one line
with the chosen ports, then serves until SIGINT or SIGTERM. Everything it stores survives a
restart with the same --data-dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_recorder.uplinks.registry import SERVICES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the local ambient audio service emulator (gRPC, REST, WebSocket, token issuer)",
        description="Run the local ambient audio streaming service emulator. Port 0 picks a "
        "free port; the chosen ports are printed on one line at start.",
    )
    parser.add_argument(
        "--service",
        choices=sorted({spec.emulator for spec in SERVICES.values()}),
        default="aas",
        help="which service to emulate (default: aas)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="D",
        help="where sessions, recordings and keys live (default: ./<service>-emulator-data)",
    )
    parser.add_argument("--grpc-port", type=int, default=50051, metavar="P", help="0 = any free")
    parser.add_argument("--http-port", type=int, default=8080, metavar="Q", help="0 = any free")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--client-id", default=None, help="development OAuth2 client id")
    parser.add_argument("--client-secret", default=None, help="development OAuth2 client secret")
    parser.add_argument(
        "--token-lifetime-s",
        type=float,
        default=None,
        help="lifetime of issued tokens (default: the service's own: AAS and Dice 3600, Corti 300)",
    )
    parser.add_argument(
        "--device-config",
        type=Path,
        default=None,
        metavar="PATH",
        help="write [uplink], [auth], [aas] TOML pointing a device here (secret file beside it)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--http2-port", type=int, default=0, metavar="P", help="aws: HTTP/2 port (0 = any free)"
    )
    parser.add_argument(
        "--aws-service",
        choices=sorted(name for name, spec in SERVICES.items() if spec.emulator == "aws"),
        default="aws-healthscribe",
        help="aws: which uplink.service the written device config names",
    )
    parser.add_argument(
        "--fidelity",
        choices=["reference", "live"],
        default="reference",
        help="aas: 'live' behaves as the live service was observed to (no open is answered, "
        "RecordAmbient answers nothing, the WebSocket answers only delegated tokens); "
        "'reference' answers every open, ack and close. Corti, Dice and AWS have one profile, "
        "checked against the vendors' SDKs, models and docs, so both names mean it",
    )
    parser.add_argument(
        "--stream-limit-s", type=float, default=None, help="dice: per-stream limit (3600)"
    )
    parser.add_argument(
        "--countdown-s", type=float, default=None, help="dice: duration_limit countdown (60)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from devtools.emulators.aas.app import Emulator
    from devtools.emulators.aas.settings import DEV_CLIENT_ID, DEV_CLIENT_SECRET, EmulatorSettings
    from edge_recorder.support.logs import setup_logging

    setup_logging(args.log_level)
    if args.data_dir is None:
        args.data_dir = Path(f"{args.service}-emulator-data")
    if args.service != "aas":
        return _serve_other(args)
    settings = EmulatorSettings(
        data_dir=args.data_dir.resolve(),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        client_id=args.client_id or DEV_CLIENT_ID,
        client_secret=args.client_secret or DEV_CLIENT_SECRET,
        token_lifetime_s=args.token_lifetime_s or 3600.0,
        fidelity=args.fidelity,
    )

    async def serve() -> int:
        emulator = Emulator(settings)
        try:
            await emulator.start()
        except OSError as exc:
            print(f"edge-recorder emulator: cannot listen: {exc}", flush=True)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"aas-emulator grpc_port={emulator.grpc_port} http_port={emulator.http_port} "
            f"grpc_target={emulator.grpc_target} http_url={emulator.http_url} "
            f"ws_url={emulator.ws_url} token_url={emulator.token_url}",
            flush=True,
        )
        print(
            f"dev client: client_id={settings.client_id} client_secret={settings.client_secret}",
            flush=True,
        )
        if args.device_config is not None:
            from devtools.emulators.aas.device_config import write_device_config

            write_device_config(emulator, args.device_config)
            print(f"device config: {args.device_config.resolve()}", flush=True)
        print(f"data dir: {settings.data_dir}", flush=True)
        await stop.wait()
        await emulator.stop()
        return 0

    return asyncio.run(serve())


def _serve_other(args: argparse.Namespace) -> int:
    """Corti, Dice or AWS: each package's `cli.serve(args)` runs until cancelled."""
    import asyncio
    import importlib
    import signal

    serve = importlib.import_module(f"devtools.emulators.{args.service}.cli").serve

    async def main() -> int:
        task = asyncio.create_task(serve(args))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return int(await task)
        except asyncio.CancelledError:
            return 0
        except OSError as exc:
            print(f"edge-recorder emulator: cannot listen: {exc}", flush=True)
            return 1

    return asyncio.run(main())
