"""One HTTP/2 request with a streamed body over awscrt, as asyncio calls.

awscrt calls back on its own threads; everything is handed to the event loop with
`call_soon_threadsafe`. One TLS connection per stream: a listening session is one long
request, so pooling buys nothing, and a fresh connection after a break never inherits a
half-dead one. awscrt speaks HTTP/2 only over TLS with ALPN (no cleartext h2c), hence the
emulator serves TLS with a test CA.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from awscrt import exceptions as crt_exceptions  # type: ignore[import-untyped]
from awscrt import http as crt_http
from awscrt import io as crt_io

from edge_recorder.uplinks.base import ErrorKind, UplinkError

_EOF = object()
T = TypeVar("T")


async def await_crt(
    future: concurrent.futures.Future[T], on_late: Callable[[T], object] | None = None
) -> T:
    """Await an awscrt future without ever cancelling it.

    awscrt completes its futures from its own threads and does not expect them to be
    cancelled: cancelling one (what `asyncio.wrap_future` does when the awaiting task times
    out) makes awscrt's later `set_result`/`set_exception` raise InvalidStateError in its
    thread. So the wait is shielded; if the caller gives up, `on_late` receives a result that
    arrives afterwards (e.g. to close a connection nobody wants any more)."""
    wrapped = asyncio.wrap_future(future)

    def settle(done: asyncio.Future[T]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # exception retrieved: no "never retrieved" warning
        if on_late is not None:
            with contextlib.suppress(Exception):
                on_late(done.result())

    try:
        return await asyncio.shield(wrapped)
    except asyncio.CancelledError:
        wrapped.add_done_callback(settle)
        raise


def _unavailable(what: str, exc: BaseException) -> UplinkError:
    name = getattr(exc, "name", type(exc).__name__)
    return UplinkError(ErrorKind.UNAVAILABLE, f"{what}: {name}", transport="http2")


async def _connect(host: str, port: int, ca_file: Path | None, timeout_s: float) -> Any:
    opts = crt_io.TlsContextOptions()
    if ca_file is not None:
        opts.override_default_trust_store_from_path(None, str(ca_file))
    opts.alpn_list = ["h2"]
    tls = crt_io.ClientTlsContext(opts).new_connection_options()
    tls.set_server_name(host)
    sock = crt_io.SocketOptions()
    sock.connect_timeout_ms = max(1, int(timeout_s * 1000))
    sock.keep_alive = True
    sock.keep_alive_interval_secs = 10
    sock.keep_alive_timeout_secs = 10
    try:
        async with asyncio.timeout(timeout_s):
            return await await_crt(
                crt_http.Http2ClientConnection.new(
                    host, port, socket_options=sock, tls_connection_options=tls
                ),
                on_late=lambda conn: conn.close(),
            )
    except (crt_exceptions.AwsCrtError, TimeoutError, OSError) as exc:
        why = (
            await _tls_problem(host, port, ca_file, timeout_s)
            if isinstance(exc, TimeoutError)
            else None
        )
        if why:
            raise UplinkError(
                ErrorKind.UNAVAILABLE, f"TLS to {host}:{port} failed: {why}", transport="http2"
            ) from exc
        raise _unavailable(f"cannot connect to {host}:{port}", exc) from exc


async def _tls_problem(host: str, port: int, ca_file: Path | None, timeout_s: float) -> str:
    """Why a TLS handshake fails, asked of the stdlib: s2n (inside awscrt) delays reporting a
    failed negotiation by 10-30 s ("blinding"), so a wrong CA would look like a timeout."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.set_alpn_protocols(["h2"])
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    except ssl.SSLError as exc:
        return str(exc.reason or exc)
    except (OSError, TimeoutError):
        return ""
    writer.close()
    return ""


class H2Request:
    """A POST whose body is written piecewise and whose answer is read as it arrives."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop
        self._stream: Any = None
        self._response: asyncio.Future[tuple[int, list[tuple[str, str]]]] = loop.create_future()
        self._body: asyncio.Queue[object] = asyncio.Queue()
        self.done: asyncio.Future[None] = loop.create_future()

    @staticmethod
    async def probe(
        host: str, port: int, *, ca_file: Path | None, connect_timeout_s: float
    ) -> None:
        """Connect (TLS, ALPN h2) and hang up: is the endpoint reachable and speaking HTTP/2?"""
        conn = await _connect(host, port, ca_file, connect_timeout_s)
        conn.close()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        path: str,
        headers: Sequence[tuple[str, str]],
        *,
        ca_file: Path | None,
        connect_timeout_s: float,
    ) -> H2Request:
        conn = await _connect(host, port, ca_file, connect_timeout_s)
        self = cls(conn, asyncio.get_running_loop())
        request = crt_http.HttpRequest("POST", path, crt_http.HttpHeaders(list(headers)))
        try:
            self._stream = conn.request(
                request, on_response=self._on_response, on_body=self._on_body, manual_write=True
            )
            self._stream.completion_future.add_done_callback(self._on_complete)
            self._stream.remote_end_stream_future.add_done_callback(self._on_remote_end)
            self._stream.activate()
        except crt_exceptions.AwsCrtError as exc:
            conn.close()
            raise _unavailable("cannot start the request", exc) from exc
        return self

    # ---- callbacks (awscrt threads) ---------------------------------------------------------
    def _on_response(self, status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
        self._post(self._set_response, status_code, list(headers))

    def _post(self, callback: Any, *args: Any) -> None:
        """Hand a callback to the event loop (from an awscrt thread); a closed loop means
        nobody waits any more."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _set_response(self, status: int, headers: list[tuple[str, str]]) -> None:
        if not self._response.done():
            self._response.set_result((status, headers))

    def _on_body(self, chunk: bytes, **_: Any) -> None:
        self._post(self._body.put_nowait, bytes(chunk))

    def _on_complete(self, future: Any) -> None:
        self._post(self._finish, future.exception())

    def _on_remote_end(self, future: Any) -> None:
        if future.exception() is None:  # the server ended its side: the body is complete
            self._post(self._body.put_nowait, _EOF)

    def _finish(self, error: BaseException | None) -> None:
        self._body.put_nowait(error if error is not None else _EOF)
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(_unavailable("stream broke", error))
                self.done.exception()  # retrieved: callers learn it from body()/write()
        if not self._response.done():
            self._response.set_exception(_unavailable("no response", error or EOFError()))
            self._response.exception()

    # ---- asyncio side -----------------------------------------------------------------------
    async def response(self, timeout_s: float) -> tuple[int, list[tuple[str, str]]]:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(self._response)
        except TimeoutError as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE, f"no response within {timeout_s:g}s", transport="http2"
            ) from exc

    async def write(self, data: bytes | None, end: bool = False, timeout_s: float = 30.0) -> None:
        """Queue `data` on the stream; returns once awscrt wrote it (flow control applies)."""
        try:
            body = BytesIO(data) if data is not None else None
            future = self._stream.write_data(body, end)
            async with asyncio.timeout(timeout_s):
                await await_crt(future)
        except (crt_exceptions.AwsCrtError, TimeoutError, RuntimeError) as exc:
            raise _unavailable("write failed", exc) from exc

    async def body(self) -> AsyncIterator[bytes]:
        """Response body chunks until the server ends the stream (UplinkError if it broke)."""
        while True:
            item = await self._body.get()
            if item is _EOF:
                return
            if isinstance(item, BaseException):
                raise _unavailable("stream broke", item)
            assert isinstance(item, bytes)
            yield item

    def close(self) -> None:
        """Drop the connection (and with it the stream) at once."""
        with contextlib.suppress(Exception):
            self._conn.close()
