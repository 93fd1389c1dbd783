"""One emulated STREAM WebSocket session: order, schema, limits, answers, faults.

Frames are handled strictly in arrival order and a ping is answered only when reached, after
every earlier audio chunk was written to the stream's file: a pong therefore proves receipt
of everything before it, which is what the device's acknowledgement watermark assumes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSMsgType, web

from devtools.emulators.dice import protocol as p
from devtools.emulators.dice.faults import Fault
from devtools.emulators.dice.settings import DiceEmulatorSettings
from devtools.emulators.dice.store import StreamRecord, StreamStore
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
POLICY_VIOLATION = 1008


class _Dropped(Exception):
    """The connection was cut on purpose (fault injection)."""


class StreamSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        settings: DiceEmulatorSettings,
        store: StreamStore,
        record: StreamRecord,
        drop: Fault | None,
        error: Fault | None,
    ) -> None:
        self._request = request
        self._ws = ws
        self._settings = settings
        self._store = store
        self.record = record
        self._drop = drop
        self._error = error
        self._config: p.StreamConfig | None = None
        self._transcriber: p.Transcriber | None = None

    async def run(self) -> None:
        try:
            await self._loop()
        except p.ProtocolViolation as exc:
            await self._refuse(exc.message)
        except _Dropped:
            self._store.end(self.record, "dropped")
        except ConnectionError:  # the client went away while we answered
            pass
        finally:
            self._store.end(self.record, "closed")

    async def _refuse(self, message: str) -> None:
        """`error_msg` [doc], then a close [inferred: 1008 policy violation]."""
        log.info("dice emulator refused a stream", stream=self.record.index, reason=message)
        self._store.end(self.record, "error", message)
        if not self._ws.closed:
            await self._send({"object": "error_msg", "message": message})
            await self._ws.close(code=POLICY_VIOLATION, message=b"error")

    async def _send(self, body: dict[str, Any]) -> None:
        if not self._ws.closed:
            await self._ws.send_json(body)

    async def _loop(self) -> None:
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.TEXT:
                if await self._on_text(str(msg.data)):
                    return
            elif msg.type == WSMsgType.BINARY:
                raise p.ProtocolViolation("all messages must be JSON text frames")
            else:  # the client went away (with or without a close frame)
                return

    async def _on_text(self, text: str) -> bool:
        """Handle one message; True once the session is over."""
        body = p.parse_json(text)
        kind = body["object"]
        if kind == "stream_request":
            if self._config is not None:
                raise p.ProtocolViolation("stream_request was already received")
            config = p.parse_stream_request(body)
            if len(config.tracks) != 1:
                raise p.ProtocolViolation("the emulator takes one stream per session")
            self._config = config
            self.record.config = config.as_json()
            self.record.track = next(iter(config.tracks))
            self._transcriber = p.Transcriber(
                config.sample_rate,
                self._settings.transcript_item_s,
                config.tracks[self.record.track],
            )
            self._store.save(self.record)
            return False
        if self._config is None:
            raise p.ProtocolViolation(f"{kind} before stream_request: stream_request comes first")
        if kind == "audio_chunk":
            await self._audio(body, self._config)
            return False
        if kind == "stop":
            await self._stop(self._config)
            return True
        raise p.ProtocolViolation(f"unknown message object {kind!r}")

    async def _audio(self, body: dict[str, Any], config: p.StreamConfig) -> None:
        _, pcm = p.parse_audio_chunk(body, config, self._settings.max_chunk_s)
        rate = config.sample_rate
        before_s = self.record.bytes / 2 / rate
        after_s = (self.record.bytes + len(pcm)) / 2 / rate
        limit = self._settings.stream_limit_s
        if after_s > limit + 1e-9:
            raise p.ProtocolViolation(f"stream duration limit of {limit:g} s reached")
        self._store.append(self.record, pcm)
        if self._drop is not None and self.record.bytes >= self._drop.after_bytes:
            transport = self._request.transport
            if transport is not None:
                transport.abort()
            raise _Dropped
        if self._error is not None and self.record.bytes >= self._error.after_bytes:
            raise p.ProtocolViolation(self._error.message)
        for remaining in p.countdown(limit, self._settings.countdown_s, before_s, after_s):
            self.record.duration_limit_sent.append(remaining)
            await self._send({"object": "duration_limit", "remaining_sec": remaining})
        if "transcript" in config.outputs and self._transcriber is not None:
            for item in self._transcriber.feed(pcm):
                await self._send(item)
            self.record.transcript_items = len(self._transcriber.items)

    async def _stop(self, config: p.StreamConfig) -> None:
        """The last transcript item final, then the note, then close [doc]."""
        if "transcript" in config.outputs and self._transcriber is not None:
            for item in self._transcriber.flush():
                await self._send(item)
            self.record.transcript_items = len(self._transcriber.items)
        if "note" in config.outputs:
            audio = self._store.audio_path(self.record.index).read_bytes()
            note = p.note_message(config.note_template, audio, config.sample_rate)
            self.record.note_sections = [s["sec_title"] for s in note["sections"]]
            await self._send(note)
        self._store.end(self.record, "stopped")
        await self._ws.close()
