"""One Dice STREAM WebSocket: a stretch of one recording, from a start offset to a stop.

Implements `base.LiveRecording` on top of `live.LiveRecordingState`. The service keeps no
audio and sends no acknowledgement, so the receipt watermark is WebSocket ping/pong: after
about 1 s of audio (and at least once a second while bytes are unconfirmed) a ping carrying
the recording offset reached is sent; its pong confirms every frame written before it.

aiohttp detail (verified against aiohttp 3.14's `ClientWebSocketResponse.receive`): with
`autoping=True` the client answers server pings itself and *swallows* every PONG, so a pong
never reaches the caller. The socket is therefore opened with `autoping=False`; this reader
sees PING and PONG frames, answers pings itself, and turns our own pongs (payload `ack:N`)
into confirmations. Heartbeat pongs (empty payload) are ignored here; aiohttp's heartbeat
still resets on any received frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import ErrorKind, UplinkError
from edge_recorder.uplinks.dice import messages as m
from edge_recorder.uplinks.limits import DICE_MESSAGE_MAX_BYTES, ws_too_large
from edge_recorder.uplinks.live import LiveRecordingState, StateReporting

log = get_logger(__name__)

PING_INTERVAL_S = 1.0  # ping at least this often while sent bytes are unconfirmed
_ERROR_TEXT_MAX = 200
_DRAIN_S = 1.0  # after a failed write, how long the reader may finish reading pongs
_MESSAGE = "a message on the Dice stream"


def _unavailable(message: str) -> UplinkError:
    return UplinkError(ErrorKind.UNAVAILABLE, message, transport="websocket")


def service_error(message: str) -> UplinkError:
    """An `error_msg`: free text with no code [doc], so retryable (SERVER): the engine opens a
    new stream from the confirmed offset after a back-off and alerts; nothing is dropped."""
    return UplinkError(
        ErrorKind.SERVER,
        f"service error_msg: {message[:_ERROR_TEXT_MAX]}",
        transport="websocket",
        retryable=True,
    )


class DiceStream(StateReporting):
    """A live stream (implements `base.LiveRecording`); see the module docstring."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        config: DiceConfig,
        *,
        track_id: str,
        sample_rate: int,
        start_offset: int,
        sequence: int,
        timeout_s: float,
        label: dict[str, Any],
        on_result: Callable[[DiceStream], Awaitable[None]] | None = None,
    ) -> None:
        self._ws = ws
        self._config = config
        self.track_id = track_id
        self.sample_rate = sample_rate
        self.start_offset = start_offset
        self._label = label  # recording_id or recording_seq, for log lines (no PHI)
        self._timeout = timeout_s
        self._on_result = on_result
        self._state = LiveRecordingState("websocket", start_offset, sequence)
        self._chunk = m.chunk_bytes(sample_rate, config.chunk_ms)
        self._per_second = sample_rate * m.BYTES_PER_SAMPLE
        self._wire = start_offset  # bytes of the recording written to the socket
        self._pinged = start_offset  # offset named by the last ping
        self._carry = b""  # an odd trailing byte waits for its sample's other half
        self._lock = asyncio.Lock()  # one writer at a time: a ping names what precedes it
        self._first_pong = asyncio.Event()
        self._ended = asyncio.Event()  # note received, or the server closed
        self._stopping = False
        self.transcript = m.Transcript()
        self.note: m.Note | None = None
        self.note_error: str | None = None
        self.limit_remaining_s: float | None = None  # last duration_limit countdown value
        self._reader = asyncio.create_task(self._read())
        self._pinger: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ LiveRecording

    async def start(self, request: str) -> None:
        """Send `stream_request`, then a ping: its pong proves the request was read without
        an `error_msg` (the service answers nothing else to it)."""
        await self._write(self._ws.send_str(request))
        await self._ping(force=True)
        try:
            async with asyncio.timeout(self._timeout):
                await self._first_pong.wait()
        except TimeoutError:
            raise _unavailable(
                f"stream_request not acknowledged within {self._timeout:g}s"
            ) from None
        if self._state.error is not None:
            raise self._state.error
        self._pinger = asyncio.create_task(self._ping_loop())

    async def send(self, offset: int, data: bytes) -> None:
        self._state.check_send(offset, len(data))
        data = self._carry + data
        whole = len(data) - len(data) % m.BYTES_PER_SAMPLE
        self._carry = data[whole:]
        for piece in m.split_audio(data[:whole], self._chunk):
            await self._send_audio(piece)
        if self._wire - self._pinged >= self._per_second:
            await self._ping()

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        """Confirm every byte (final ping), send stop, wait for the note or the server's
        close up to `note_timeout_s`; returns the bytes confirmed."""
        if self._state.error is not None:
            raise self._state.error
        try:
            if self._carry:  # cannot happen for PCM16; never drop a byte regardless
                piece, self._carry = self._carry, b""
                await self._send_audio(piece)
            await self._ping(force=True)
            await self._state.wait_confirmed(self._wire, self._timeout)
            self._state.closing = True
            self._stopping = True
            await self._write(self._ws.send_str(m.STOP))
            try:
                async with asyncio.timeout(self._config.note_timeout_s):
                    await self._ended.wait()
            except TimeoutError:
                self.note_error = f"no note within {self._config.note_timeout_s:g}s"
            if self.note is None:
                log.warning("dice note not received", reason=self.note_error, **self._label)
            final = self._state.confirmed
            await self._state.closed(final)
        finally:
            await self._shutdown()
        log.info(
            "dice stream closed",
            **self._label,
            offset=self.start_offset,
            confirmed=final,
            transcript_count=self.transcript.count,
            note_section_count=len(self.note.sections) if self.note else 0,
        )
        return final

    async def abort(self) -> None:
        await self._shutdown()

    # ------------------------------------------------------------------ writing

    async def _write(self, op: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await op
        except (aiohttp.ClientError, ConnectionError, TimeoutError, RuntimeError) as exc:
            err = _unavailable(f"WebSocket send failed: {type(exc).__name__}")
            # Pongs that arrived before the break still confirm bytes: let the reader drain
            # them (it ends at the socket's end) so less is sent twice on the next stream.
            if asyncio.current_task() is not self._reader:
                await asyncio.wait({self._reader}, timeout=_DRAIN_S)
            await self._state.failed(err)
            raise self._state.error or err from None

    async def _send_audio(self, piece: bytes) -> None:
        async with self._lock:
            if self._state.error is not None:
                raise self._state.error
            await self._write(self._ws.send_str(m.audio_chunk(self.track_id, piece)))
            self._wire += len(piece)

    async def _ping(self, force: bool = False) -> None:
        async with self._lock:
            if self._wire == self._pinged and not force:
                return
            offset = self._wire
            await self._write(self._ws.ping(m.ack_ping(offset)))
            self._pinged = offset

    async def _ping_loop(self) -> None:
        """Bytes sent but not yet named by a ping (capture slower than 1 s per ping) get one
        within PING_INTERVAL_S, so the engine's ack watchdog never waits on a quiet link."""
        with contextlib.suppress(UplinkError):
            while not self._stopping:
                await asyncio.sleep(PING_INTERVAL_S)  # a timer, not synchronisation
                if self._wire > self._pinged and not self._stopping:
                    await self._ping()

    # ------------------------------------------------------------------ reading

    async def _read(self) -> None:
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(str(msg.data))
                elif msg.type == aiohttp.WSMsgType.PONG:
                    offset = m.acked_offset(bytes(msg.data or b""))
                    if offset is not None:
                        await self._state.stored(min(offset, self._wire))
                        self._first_pong.set()
                elif msg.type == aiohttp.WSMsgType.PING:
                    await self._ws.pong(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    raise UplinkError(
                        ErrorKind.PROTOCOL, "server sent a binary frame", transport="websocket"
                    )
                elif (oversized := ws_too_large(msg, DICE_MESSAGE_MAX_BYTES, _MESSAGE)) is not None:
                    if self._stopping:  # all audio confirmed; only the note is lost
                        self.note_error = oversized.message
                        return
                    raise oversized
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    code = self._ws.close_code
                    if not self._stopping:
                        await self._state.failed(
                            _unavailable(f"server closed the stream (code {code})")
                        )
                    return
        except UplinkError as err:
            await self._state.failed(err)
        except (aiohttp.ClientError, ConnectionError) as exc:
            await self._state.failed(_unavailable(f"WebSocket lost: {type(exc).__name__}"))
        finally:
            self._ended.set()
            self._first_pong.set()  # wake a start() waiting on a dead socket

    async def _on_text(self, text: str) -> None:
        try:
            message = m.parse_server_message(text)
        except m.MessageError as exc:
            raise UplinkError(ErrorKind.PROTOCOL, str(exc), transport="websocket") from None
        if isinstance(message, m.TranscriptItem):
            self.transcript.update(message)
        elif isinstance(message, m.Note):
            self.note = message
            self._ended.set()
        elif isinstance(message, m.DurationLimit):
            first = self.limit_remaining_s is None
            self.limit_remaining_s = message.remaining_sec
            level = log.warning if first else log.info
            level(
                "dice stream duration limit near", remaining_s=message.remaining_sec, **self._label
            )
        elif isinstance(message, m.ErrorMsg):
            if self._stopping:  # all audio confirmed; only the note failed
                self.note_error = f"error_msg after stop: {message.message[:_ERROR_TEXT_MAX]}"
                self._ended.set()
                return
            log.warning("dice service error_msg", **self._label)  # text: in the UplinkError
            raise service_error(message.message)

    # ------------------------------------------------------------------ ending

    async def _shutdown(self) -> None:
        self._stopping = True
        for task in (self._pinger, self._reader):
            if task is not None and not task.done():
                task.cancel()
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
            await self._ws.close()
        await asyncio.gather(
            *(t for t in (self._pinger, self._reader) if t is not None), return_exceptions=True
        )
        await self._state.ended()
        if self._on_result is not None:
            callback, self._on_result = self._on_result, None
            await callback(self)
