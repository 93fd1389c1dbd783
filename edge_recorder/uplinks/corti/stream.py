"""Client of Corti's real-time `/streams` WebSocket (protocol only; not a delivery path).

[doc] `wss://api.<region>.corti.app/audio-bridge/v2/interactions/{id}/streams?tenant-name=…&
token=Bearer%20<jwt>`; send `{"type":"config","configuration":{…}}` within 10 s and wait for
`CONFIG_ACCEPTED` (`CONFIG_DENIED|CONFIG_MISSING|CONFIG_NOT_PROVIDED|CONFIG_ALREADY_RECEIVED`
→ INVALID); binary audio frames, ~250 ms each, paced at real time; `flush` → `flushed` (the
acknowledgement watermark: everything sent before the flush was processed); `end` → `usage`,
then `ENDED`. Transcript/fact messages are counted, never logged (they are PHI).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.base import Ack, ErrorKind, UplinkError
from edge_recorder.uplinks.corti.errors import error_for_response, network_error
from edge_recorder.uplinks.limits import STREAM_MESSAGE_MAX_BYTES, parse_json, ws_too_large

log = get_logger(__name__)
_MESSAGE = "a message on the Corti stream"

CONFIG_REFUSALS = frozenset(
    {"CONFIG_DENIED", "CONFIG_MISSING", "CONFIG_NOT_PROVIDED", "CONFIG_ALREADY_RECEIVED",
     "CONFIG_TIMEOUT"}
)  # fmt: skip


def stream_url(ws_base: str, interaction_id: str, tenant: str, token: str) -> str:
    bearer = quote(f"Bearer {token}", safe="")
    return (
        f"{ws_base.rstrip('/')}/interactions/{interaction_id}/streams"
        f"?tenant-name={quote(tenant, safe='')}&token={bearer}"
    )


def stream_configuration(primary_language: str, mode: str = "transcription") -> dict[str, Any]:
    """[doc] `transcription` (language, diarization, participants) and `mode`."""
    return {
        "transcription": {
            "primaryLanguage": primary_language,
            "isDiarization": False,
            "isMultichannel": False,
            "participants": [{"channel": 0, "role": "multiple"}],
        },
        "mode": {"type": mode, "outputLocale": primary_language},
    }


@dataclass
class StreamStats:
    sent: int = 0  # audio bytes sent
    flushed: int = 0  # audio bytes acknowledged by `flushed`
    transcripts: int = 0
    facts: int = 0
    usage: dict[str, Any] = field(default_factory=dict)


class CortiStream:
    """One open `/streams` connection. `bytes_per_second` paces audio at real time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession,
                 bytes_per_second: int, chunk_ms: int = 250) -> None:  # fmt: skip
        self._ws, self._http = ws, http
        self.rate = bytes_per_second
        self.chunk = max(1, bytes_per_second * chunk_ms // 1000)
        self.stats = StreamStats()
        self._started: float | None = None
        self._flushes: asyncio.Queue[None] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._failure: UplinkError | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, configuration: dict[str, Any], *, bytes_per_second: int,
                   timeout_s: float = 10.0, chunk_ms: int = 250) -> CortiStream:  # fmt: skip
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=timeout_s))
        try:
            ws = await http.ws_connect(
                url, heartbeat=None, autoping=True, max_msg_size=STREAM_MESSAGE_MAX_BYTES
            )
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise error_for_response(exc.status, exc.message, transport="websocket") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            await http.close()
            raise network_error(exc, "stream open", transport="websocket") from None
        try:
            await ws.send_json({"type": "config", "configuration": configuration})
            async with asyncio.timeout(timeout_s):
                answer = await ws.receive()
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            await ws.close()
            await http.close()
            raise network_error(exc, "stream config", transport="websocket") from None
        kind = _type_of(answer)
        if (oversized := ws_too_large(answer, STREAM_MESSAGE_MAX_BYTES, _MESSAGE)) is not None:
            await ws.close()
            await http.close()
            raise oversized
        if kind != "CONFIG_ACCEPTED":
            await ws.close()
            await http.close()
            if kind in CONFIG_REFUSALS:
                raise UplinkError(ErrorKind.INVALID, f"stream configuration refused: {kind}",
                                  transport="websocket")  # fmt: skip
            raise UplinkError(ErrorKind.PROTOCOL, f"unexpected first stream answer {kind!r}",
                              transport="websocket")  # fmt: skip
        return cls(ws, http, bytes_per_second, chunk_ms)

    async def send(self, data: bytes) -> None:
        """Send audio in ~chunk_ms frames, never faster than real time."""
        for start in range(0, len(data), self.chunk):
            self._raise_if_failed()
            piece = data[start : start + self.chunk]
            if self._started is None:
                self._started = time.monotonic()
            due = self._started + self.stats.sent / self.rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # pacing at real time (the protocol's rule)
            try:
                await self._ws.send_bytes(piece)
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise network_error(exc, "stream send", transport="websocket") from None
            self.stats.sent += len(piece)

    async def flush(self, timeout_s: float = 10.0) -> Ack:
        """`flush` → `flushed`: the service processed every byte sent before it."""
        watermark = self.stats.sent
        await self._control({"type": "flush"})
        await self._wait(self._flushes.get(), timeout_s, "flushed")
        self.stats.flushed = max(self.stats.flushed, watermark)
        return Ack(self.stats.flushed)

    async def end(self, timeout_s: float = 10.0) -> StreamStats:
        """`end` → `usage` → `ENDED`; the connection is closed afterwards."""
        await self._control({"type": "end"})
        await self._wait(self._ended.wait(), timeout_s, "ENDED")
        await self.aclose()
        return self.stats

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()
        await self._http.close()

    # ------------------------------------------------------------------ internals
    async def _control(self, message: dict[str, str]) -> None:
        self._raise_if_failed()
        try:
            await self._ws.send_json(message)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise network_error(exc, f"stream {message['type']}", transport="websocket") from None

    async def _wait(self, waiter: Any, timeout_s: float, what: str) -> None:
        task = asyncio.ensure_future(waiter)
        reader = self._reader
        done, _ = await asyncio.wait({task, reader}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if task in done:
            return
        task.cancel()
        self._raise_if_failed()
        raise UplinkError(ErrorKind.UNAVAILABLE, f"no {what} from the stream within {timeout_s:g}s",
                          transport="websocket")  # fmt: skip

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _read(self) -> None:
        async for msg in self._ws:
            if (oversized := ws_too_large(msg, STREAM_MESSAGE_MAX_BYTES, _MESSAGE)) is not None:
                self._failure = oversized
                return
            kind = _type_of(msg)
            if kind == "flushed":
                self._flushes.put_nowait(None)
            elif kind == "transcript":
                self.stats.transcripts += 1
            elif kind == "facts":
                self.stats.facts += 1
            elif kind == "usage":
                self.stats.usage = {k: v for k, v in _body(msg).items() if k != "type"}
            elif kind == "ENDED":
                self._ended.set()
                return
            elif kind == "error":
                self._failure = UplinkError(ErrorKind.SERVER, "the stream reported an error",
                                            transport="websocket")  # fmt: skip
                return
        self._failure = UplinkError(
            ErrorKind.UNAVAILABLE, "the stream closed before ENDED", transport="websocket"
        )


def _body(msg: aiohttp.WSMessage) -> dict[str, Any]:
    if msg.type != aiohttp.WSMsgType.TEXT:
        return {}
    body = parse_json(str(msg.data))
    return body if isinstance(body, dict) else {}


def _type_of(msg: aiohttp.WSMessage) -> str:
    kind = _body(msg).get("type")
    return kind if isinstance(kind, str) else f"<{msg.type.name.lower()}>"
