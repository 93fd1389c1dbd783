"""`edge-recorder ctl`: talk to the running daemon over its control socket.

Exit codes a script can rely on: 0 done, 1 refused by the daemon (the reply says why),
65 bad --context-json, 69 (EX_UNAVAILABLE) the daemon is not running or not answering,
76 a reply that is not the protocol, 77 no permission on the socket, 78 a config error.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit

CTL_COMMANDS = ("status", "start", "stop", "pause", "resume", "identify")
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_PROTOCOL = 76
EX_NOPERM = 77
_REPLY_MAX = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="control the running daemon: status, start, stop, pause, resume, identify",
        description="Send one command to the running daemon's control socket and print its "
        "JSON reply. Exit 0 when done, 1 when refused, 69 when the daemon is not running.",
    )
    parser.add_argument("command", choices=CTL_COMMANDS, help="what to ask the daemon")
    add_config_argument(parser)
    parser.add_argument(
        "--socket", type=Path, metavar="PATH", help="control socket (default: control.socket)"
    )
    parser.add_argument(
        "--context-json",
        metavar="FILE|-",
        help="start only: JSON file (or - for stdin) with EHR context "
        "(correlation_id, external_user_id, ehr_instance_id, data)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="reply timeout (default 10 s)"
    )
    parser.set_defaults(func=run)


def _fail(code: int, message: str) -> int:
    print(f"edge-recorder ctl: {message}", file=sys.stderr)
    return code


def socket_path(args: argparse.Namespace) -> Path:
    """--socket, else control.socket from the config; without a config file, the default."""
    if args.socket is not None:
        return Path(args.socket)
    explicit = args.config is not None or "EDGE_RECORDER_CONFIG" in os.environ
    if not explicit and not config_path(args).exists():
        from edge_recorder.config.loader import ConfigError, load_config

        try:
            return load_config(None).control.socket
        except ConfigError:
            pass  # fall through: load_or_exit reports it
    return load_or_exit(args, usable=False).control.socket


def read_context(spec: str) -> dict[str, Any]:
    """The --context-json object, validated; ValueError with a message that never quotes it."""
    from pydantic import ValidationError

    from edge_recorder.status import StartContext

    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {spec}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"context is not valid JSON (line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise ValueError("context must be a JSON object")
    try:
        StartContext.model_validate(obj)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                ".".join(map(str, err["loc"])) + ": " + err["msg"]
                for err in exc.errors(include_url=False, include_input=False)
            )
        ) from None
    return obj


def exchange(path: Path, request: dict[str, Any], timeout: float) -> bytes:
    """Send one request line, return the reply line (OSError/TimeoutError pass through)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < _REPLY_MAX:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def run(args: argparse.Namespace) -> int:
    if args.context_json is not None and args.command != "start":
        return _fail(2, "--context-json only goes with 'start'")
    request: dict[str, Any] = {"cmd": args.command}
    if args.context_json is not None:
        try:
            request["context"] = read_context(args.context_json)
        except ValueError as exc:
            return _fail(EX_DATAERR, f"bad --context-json: {exc}")
    path = socket_path(args)
    try:
        raw = exchange(path, request, args.timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        return _fail(EX_UNAVAILABLE, f"the daemon is not running (nothing listening on {path})")
    except PermissionError:
        return _fail(
            EX_NOPERM, f"permission denied on {path}: run as root or a member of its group"
        )
    except TimeoutError:
        return _fail(EX_UNAVAILABLE, f"the daemon did not answer within {args.timeout:g} s")
    except OSError as exc:
        return _fail(EX_UNAVAILABLE, f"cannot reach the daemon at {path}: {exc.strerror}")
    try:
        reply = json.loads(raw)
        ok = reply["ok"]
    except (ValueError, KeyError, TypeError):
        return _fail(EX_PROTOCOL, f"unexpected reply from {path} ({len(raw)} bytes)")
    shown = reply.get("data") if args.command == "status" and ok else reply
    print(json.dumps(shown, indent=2, sort_keys=False))
    if ok is not True:
        return _fail(1, f"{args.command} refused: {reply.get('error') or 'no reason given'}")
    return 0
