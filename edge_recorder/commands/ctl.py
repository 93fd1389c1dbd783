"""`edge-recorder ctl`: talk to the running daemon over its control socket.

Exit codes a script can rely on (the table: `edge_recorder/support/exitcodes.py`): 0 done,
1 refused by the daemon (the reply says why), 65 bad --context-json, 69 (EX_UNAVAILABLE) the
daemon is not running or not answering, 75 (EX_TEMPFAIL) the daemon runs but is too busy to
take the request (try again), 76 a reply that is not the protocol, 77 no permission on the
socket, 78 a config error.

A connection the daemon could not take (its listen queue full: EAGAIN; or a "busy" reply) is
retried for a few seconds, with back-off, before ctl gives up with 75: a storm of other clients
is not "the daemon is not running". Retrying is safe for every command: in both cases the
daemon has not read the request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit
from edge_recorder.support import exitcodes

CTL_COMMANDS = ("status", "start", "stop", "pause", "resume", "identify", "reload")
EX_DATAERR = exitcodes.CTL_BAD_CONTEXT.code
EX_UNAVAILABLE = exitcodes.CTL_UNAVAILABLE.code
EX_TEMPFAIL = exitcodes.CTL_BUSY.code
EX_PROTOCOL = exitcodes.CTL_PROTOCOL.code
EX_NOPERM = exitcodes.CTL_NO_PERMISSION.code
BUSY_RETRY_S = 3.0  # how long a busy daemon is retried (never longer than --timeout)
REFUSED_RETRY_S = 0.5  # a refused connect: a daemon restarting, or none (then: not running)
_REPLY_MAX = 1024 * 1024


class DaemonBusy(Exception):
    """The daemon is running but took no request within the retry time."""


class HungUp(Exception):
    """The daemon closed the connection before reading the request (it was busy)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="control the running daemon: status, start, stop, pause, resume, identify, reload",
        description="Send one command to the running daemon's control socket and print its "
        "JSON reply. Exit 0 when done, 1 when refused, 69 when the daemon is not running, "
        "75 when it is too busy to take the command (try again). 'reload' re-reads the "
        "config file and is refused, with the problems, when the file is not valid.",
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


def exchange_once(path: Path, request: dict[str, Any], timeout: float) -> bytes:
    """Send one request line, return the reply line (OSError/TimeoutError pass through)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            raise HungUp from None  # taken, then closed unread: a busy reply raced us
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < _REPLY_MAX:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def _busy_reply(raw: bytes) -> bool:
    try:
        reply = json.loads(raw)
    except ValueError:
        return False
    return isinstance(reply, dict) and reply.get("ok") is False and reply.get("code") == "busy"


def exchange(path: Path, request: dict[str, Any], timeout: float) -> bytes:
    """`exchange_once`, retried with back-off while the daemon cannot take the connection.

    DaemonBusy when it stays busy for BUSY_RETRY_S (bounded by `timeout`); a refused connect
    is retried for REFUSED_RETRY_S and then passed through (nothing listens: not running).
    """
    start = time.monotonic()
    busy_until = start + min(timeout, BUSY_RETRY_S)
    refused_until = start + min(timeout, REFUSED_RETRY_S)
    delay = 0.01
    while True:
        try:
            raw = exchange_once(path, request, timeout)
        except BlockingIOError:  # EAGAIN: the daemon's listen queue is full
            if time.monotonic() >= busy_until:
                raise DaemonBusy("its control socket accepts no more connections") from None
        except HungUp:
            if time.monotonic() >= busy_until:
                raise DaemonBusy("it closed the connection unread") from None
        except ConnectionRefusedError:
            if time.monotonic() >= refused_until:
                raise
        else:
            if not _busy_reply(raw):
                return raw
            if time.monotonic() >= busy_until:
                raise DaemonBusy("it answered 'too many control clients'") from None
        time.sleep(delay)  # back-off between attempts (a retry loop, bounded above)
        delay = min(delay * 2, 0.2)


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
    except DaemonBusy as exc:
        return _fail(EX_TEMPFAIL, f"the daemon is running but busy ({exc}); try again")
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
