"""HTTP/2 over TLS (ALPN h2) for the streaming endpoint, with the `h2` state machine on asyncio.

Each request gets a `StreamHandler`; received DATA is acknowledged for flow control only after
the handler stored it, so a slow disk slows the client instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from devtools.emulators.aws.handler import Output, Rejected, StreamHandler
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

HandlerFactory = Callable[[Callable[[str], None]], StreamHandler]


class Registry:
    """Open connections by session id, so a resumed stream can supersede a stale one."""

    def __init__(self) -> None:
        self.by_session: dict[str, H2Protocol] = {}

    def supersede(self, session_id: str) -> None:
        proto = self.by_session.pop(session_id, None)
        if proto is not None:
            proto.abort()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY = 0x7


class GracefulGoaway:
    """Keeps a client's graceful GOAWAY (NO_ERROR) away from h2.

    RFC 9113 section 6.8: a GOAWAY stops new streams; the open ones finish. AWS's JavaScript
    SDK sends one right after it opens its event stream, then keeps sending events. h2 closes
    the whole connection on any GOAWAY (python-hyper/h2 issue 1181) and then refuses the
    stream's DATA, so the client's NO_ERROR GOAWAY frames are dropped here, between TLS and
    h2; any other GOAWAY passes through. Frames are cut at their 9-byte headers.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._preface = True
        self.seen = False  # the client said it opens no more streams

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        if self._preface:
            if len(self._buffer) < len(PREFACE):
                return b""
            out += self._buffer[: len(PREFACE)]
            self._buffer = self._buffer[len(PREFACE) :]
            self._preface = False
        while len(self._buffer) >= 9:
            size = int.from_bytes(self._buffer[:3], "big") + 9
            if len(self._buffer) < size:
                break
            frame, self._buffer = self._buffer[:size], self._buffer[size:]
            graceful = frame[3] == GOAWAY and frame[13:17] == b"\0\0\0\0"
            if graceful:
                self.seen = True
            else:
                out += frame
        return bytes(out)


class H2Protocol(asyncio.Protocol):
    def __init__(self, make_handler: HandlerFactory, registry: Registry) -> None:
        self._make = make_handler
        self._registry = registry
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._transport: asyncio.Transport | None = None
        self._handlers: dict[int, StreamHandler] = {}
        self._frames = GracefulGoaway()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for handler in self._handlers.values():
            handler.broken()
        self._handlers.clear()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        data = self._frames.feed(data)
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.abort()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, [(str(k), str(v)) for k, v in event.headers])
            elif isinstance(event, h2.events.DataReceived):
                self._data(event.stream_id, event.data, event.flow_controlled_length)
            elif isinstance(event, h2.events.StreamEnded):
                handler = self._handlers.pop(event.stream_id, None)
                if handler is not None:
                    self._answer(event.stream_id, handler.end_of_body())
            elif isinstance(event, h2.events.StreamReset):
                handler = self._handlers.pop(event.stream_id, None)
                if handler is not None:
                    handler.broken()
            if self._transport is None or self._transport.is_closing():
                return
        self._flush()

    def _request(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        pseudo = dict(headers)
        plain = {k.lower(): v for k, v in headers if not k.startswith(":")}
        handler = self._make(self._registry.supersede)
        try:
            handler.start(
                pseudo.get(":method", ""),
                pseudo.get(":authority", ""),
                pseudo.get(":path", ""),
                plain,
            )
        except Rejected as exc:
            log.info("aws emulator rejected a stream", status=exc.status, error=exc.error_type)
            body = json.dumps({"message": str(exc)}).encode()
            self._conn.send_headers(
                stream_id,
                [
                    (":status", str(exc.status)),
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", exc.error_type),
                    ("content-length", str(len(body))),
                ],
            )
            self._conn.send_data(stream_id, body, end_stream=True)
            return
        assert handler.session is not None
        self._registry.by_session[handler.session.session_id] = self
        self._handlers[stream_id] = handler
        self._conn.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/vnd.amazon.eventstream"),
                *handler.response_headers,
            ],
        )

    def _data(self, stream_id: int, data: bytes, flow_len: int) -> None:
        handler = self._handlers.get(stream_id)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.acknowledge_received_data(flow_len, stream_id)
        if handler is None:
            return
        out = handler.feed(data)
        if out.end:
            self._handlers.pop(stream_id, None)
        self._answer(stream_id, out)

    def _answer(self, stream_id: int, out: Output) -> None:
        if out.drop:
            self.abort()
            return
        try:
            for frame in out.frames:
                self._conn.send_data(stream_id, frame)
            if out.end:
                self._conn.end_stream(stream_id)
                if out.early:
                    # a complete answer before the request ended: ask the client to stop
                    # sending (RFC 9113 section 8.1: RST_STREAM with NO_ERROR)
                    self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except (h2.exceptions.StreamClosedError, h2.exceptions.FlowControlError):
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.reset_stream(stream_id)

    def _flush(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._conn.data_to_send())
