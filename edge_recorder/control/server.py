"""The local control socket: JSON lines over a Unix socket, for `edge-recorder ctl`.

One request per line, `{"cmd": "status"|"start"|..., "context": {...}}`, one reply per line,
always a `CommandResult` (for `status` its `data` is the `DeviceStatus`). Whatever a client
sends — garbage, a 10 MB line, half a request and then silence — it gets an error reply (when
it is still there to read one) and the daemon carries on: each client is served by its own
task with a read timeout and a size limit, and handler failures become error replies. A
client that leaves before its reply is counted (`stats.departed`), never a traceback. Who is
served when many connect (slots, one-shot places, eviction of idle clients, a per-connection
rate) is in `admission.py`.
The start context is patient data: it is validated and passed on, never logged or echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from edge_recorder.config.model import ControlConfig
from edge_recorder.control.admission import Admission, Client, ControlStats, TokenBucket
from edge_recorder.status import (
    CommandHandler,
    CommandName,
    CommandRequest,
    CommandResult,
    StartContext,
)
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

COMMANDS: tuple[str, ...] = get_args(CommandName)
MAX_CLIENTS = 8  # connections that may send request after request
OVERFLOW_CLIENTS = 8  # more connections, each answered exactly one request
EVICT_IDLE_AFTER_S = 1.0  # a slot holder idle this long yields its slot to a newcomer
ONE_SHOT_READ_S = 2.0  # a one-shot connection must send its request within this time
REQUEST_RATE = 20.0  # requests per second per connection (on average)
REQUEST_BURST = 20  # requests a connection may send at once
HANDLER_TIMEOUT_S = 30.0
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL


class ControlError(Exception):
    """The control socket cannot be set up (path taken, too long, not a socket)."""


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def parse_request(line: bytes) -> CommandRequest:
    """One request line → a CommandRequest, or ProtocolError with a message safe to send
    back (it never contains the context's values)."""
    try:
        obj: Any = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("bad_request", "request is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ProtocolError("bad_json", f"request is not valid JSON ({where})") from None
    except (ValueError, RecursionError):  # absurd numbers or nesting
        raise ProtocolError("bad_json", "request JSON is too deeply nested or too big") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", 'request must be a JSON object like {"cmd": "status"}')
    unknown = sorted(set(obj) - {"cmd", "context"})
    if unknown:
        names = ", ".join(repr(_short(str(name))) for name in unknown[:3])
        raise ProtocolError("bad_request", f"unknown field(s) {names}; allowed: cmd, context")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError("bad_request", "missing 'cmd' (a string)")
    if cmd not in COMMANDS:
        allowed = ", ".join(COMMANDS)
        raise ProtocolError("unknown_command", f"unknown cmd {_short(cmd)!r}; one of: {allowed}")
    raw_context = obj.get("context")
    if raw_context is None:
        return CommandRequest.model_validate({"name": cmd})
    if cmd != "start":
        raise ProtocolError("bad_request", "'context' is only accepted with cmd 'start'")
    try:
        context = StartContext.model_validate(raw_context)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(["context", *map(str, err["loc"])]) + ": " + err["msg"]
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise ProtocolError("bad_context", problems) from None
    return CommandRequest.model_validate({"name": cmd, "context": context})


def encode(result: CommandResult) -> bytes:
    return result.model_dump_json().encode() + b"\n"


def _error(code: str, message: str) -> CommandResult:
    return CommandResult(ok=False, code=code, error=message)


class ControlServer:
    """Serves `handler` on `config.socket` until `close()`; use inside the daemon's loop."""

    def __init__(self, handler: CommandHandler, config: ControlConfig) -> None:
        self._handler = handler
        self._config = config
        self._read_timeout_s = config.read_timeout_s
        self._server: asyncio.AbstractServer | None = None
        self._admission: Admission | None = None
        self._inode: int | None = None

    @property
    def path(self) -> Path:
        return self._config.socket

    @property
    def stats(self) -> ControlStats:
        return self._admission.stats if self._admission is not None else ControlStats()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        path = self.path
        if len(str(path).encode()) > _SUN_PATH_MAX:
            raise ControlError(f"control.socket path is too long for a Unix socket: {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise ControlError(f"cannot create {path.parent}: {exc.strerror}") from exc
        if path.is_symlink() or path.exists():
            if not path.is_socket():
                raise ControlError(f"{path} exists and is not a socket; not replacing it")
            if await _listening(path):
                raise ControlError(f"another daemon is already listening on {path}")
            path.unlink()  # stale socket from a crashed daemon
        self._admission = Admission(asyncio.get_running_loop().time)
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(path), limit=self._config.max_request_bytes + 2
        )
        path.chmod(self._config.socket_mode)
        self._inode = path.stat().st_ino
        log.info("control socket listening", socket_path=str(path))

    async def close(self) -> None:
        if self._server is None or self._admission is None:
            return
        self._server.close()
        tasks = list(self._admission.clients)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(OSError):  # only remove the socket if it is still ours
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection's whole life. It never raises (asyncio would log a traceback for
        each): a client that left is counted, and a cancellation (close(), or eviction to
        make room) ends the connection quietly."""
        task = asyncio.current_task()
        assert task is not None and self._admission is not None
        client = self._admission.admit(task, MAX_CLIENTS, OVERFLOW_CLIENTS, EVICT_IDLE_AFTER_S)
        if client is None:
            await self._send(writer, _error("busy", "too many control clients; try again"))
            await _close(writer)
            return
        try:
            await self._serve(reader, writer, client)
        except (ConnectionError, TimeoutError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # closed by the server: nothing of a request was cut half-way
        finally:
            self._admission.release(client)
            await _close(writer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: Client
    ) -> None:
        limit = self._config.max_request_bytes
        one_shot = client.place == "overflow"
        timeout = min(self._read_timeout_s, ONE_SHOT_READ_S) if one_shot else self._read_timeout_s
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(REQUEST_RATE, REQUEST_BURST, loop.time)
        while True:
            wait = bucket.take()
            if wait > 0:  # asking faster than the rate: the next request waits its turn
                self.stats.rate_limited += 1
                await asyncio.sleep(wait)
            try:
                line = await asyncio.wait_for(reader.readline(), timeout)
            except TimeoutError:
                message = f"no complete request within {timeout:g} s"
                await self._send(writer, _error("timeout", message))
                return
            except ValueError:  # longer than the stream limit, no newline in sight
                line = b""
                oversized = True
            else:
                oversized = len(line.rstrip(b"\r\n")) > limit
            client.in_flight = True
            if oversized:
                message = f"request longer than {limit} bytes"
                await self._send(writer, _error("too_large", message))
                return  # the rest of that line cannot be told from the next request
            if not line:
                return  # EOF
            if not line.strip():
                client.in_flight = False
                continue
            if not await self._send(writer, await self._answer(line)):
                return
            self.stats.served += 1
            client.served += 1
            if one_shot:
                return
            client.in_flight = False
            client.idle_since = loop.time()

    async def _answer(self, line: bytes) -> CommandResult:
        try:
            request = parse_request(line)
        except ProtocolError as exc:
            log.info("control request rejected", code=exc.code)
            return _error(exc.code, exc.message)
        level = log.debug if request.name == "status" else log.info  # status may be polled
        level("control command", cmd=request.name, with_context=request.context is not None)
        try:
            if request.name == "status":
                status = self._handler.status()
                return CommandResult(
                    ok=True, state=status.state, data=status.model_dump(mode="json")
                )
            return await asyncio.wait_for(self._handler.execute(request), HANDLER_TIMEOUT_S)
        except TimeoutError:
            log.error("control command timed out", cmd=request.name)
            return _error("timeout", "the daemon did not finish the command in time")
        except Exception as exc:  # a handler bug must not take the socket down
            log.error("control command failed", cmd=request.name, error=type(exc).__name__)
            return _error("internal", f"internal error ({type(exc).__name__}); see the log")

    async def _send(self, writer: asyncio.StreamWriter, result: CommandResult) -> bool:
        """Write one reply; False (counted, logged at debug) when the client already left."""
        try:
            writer.write(encode(result))
            await asyncio.wait_for(writer.drain(), self._read_timeout_s)
        except (OSError, TimeoutError) as exc:  # BrokenPipeError, ConnectionResetError...
            self.stats.departed += 1
            log.debug("control client left before its reply", error=type(exc).__name__)
            return False
        return True


async def _listening(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2.0)
    except (OSError, TimeoutError):
        return False
    await _close(writer)
    return True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
