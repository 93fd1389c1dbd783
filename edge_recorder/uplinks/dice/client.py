"""The Dice uplink: live streams, store-and-forward as a fresh stream, and the summary.

Each `open_recording` is a NEW WebSocket stream starting at the offset the spool says was
confirmed: the service keeps no copy and has no server-side resume [doc: "No messages and
data are stored"], so a break ends that stream and the device continues the recording in the
next one. Bytes between the last pong and the break are sent again (at-least-once, overlap
about 1 s); confirmed bytes never are, and nothing is skipped. Every stream's start offset is
logged (`dice stream opened`), so the streams of a recording can be laid end to end.

`upload_recording` (a recording closed while offline) is one more stream sending [0, length)
faster than real time [inferred: the docs describe a live capture, not whether a faster feed
is accepted], resuming from the last confirmed offset kept in `UplinkState` after a crash.
`start_processing` calls nothing: each stream's note arrives at its stop. It reports what
arrived (stream, transcript item and note section counts; never text), kept per encounter in
`UplinkState` under `dice:<encounter>:summary`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from edge_recorder.config.services.dice import DiceConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.auth import TokenProvider, call_with_token
from edge_recorder.uplinks.base import (
    ChunkReader,
    DataFormat,
    ErrorKind,
    FinalizeResult,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
    UplinkState,
    kind_for_http_status,
)
from edge_recorder.uplinks.dice import messages as m
from edge_recorder.uplinks.dice.notes import NoteWriter
from edge_recorder.uplinks.dice.stream import DiceStream
from edge_recorder.uplinks.limits import DICE_MESSAGE_MAX_BYTES, PROBE_BODY_MAX_BYTES, read_prefix

log = get_logger(__name__)

UPLOAD_READ_BYTES = 64 * 1024  # spool bytes read per step of a store-and-forward stream


def summary_key(encounter: str) -> str:
    return f"dice:{encounter}:summary"


def upload_key(encounter: str, seq: int) -> str:
    return f"dice:{encounter}:upload:{seq}"


def add_to_summary(raw: str | None, seq: int, end: int, items: int, titles: Sequence[str]) -> str:
    """The encounter summary after one more stream (pure; JSON of counts and titles)."""
    summary: dict[str, Any] = json.loads(raw) if raw else {}
    summary["streams"] = int(summary.get("streams", 0)) + 1
    summary["items"] = int(summary.get("items", 0)) + items
    known = list(summary.get("titles", []))
    summary["titles"] = known + [t for t in titles if t not in known]
    ends: dict[str, int] = dict(summary.get("bytes", {}))
    ends[str(seq)] = max(end, int(ends.get(str(seq), 0)))
    summary["bytes"] = ends
    return json.dumps(summary, separators=(",", ":"), sort_keys=True)


class DiceClient:
    """Implements `base.LiveStreamer` and `base.StoreForwardUploader` for Dice STREAM."""

    def __init__(
        self,
        config: DiceConfig,
        tokens: TokenProvider,
        state: UplinkState,
        *,
        notes: NoteWriter | None = None,
        upload_sample_rate: int = 16000,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._state = state
        self._notes = notes
        self._upload_rate = upload_sample_rate
        self._ssl = ssl_context
        self._heartbeat = heartbeat_s
        self._connect_timeout = connect_timeout_s
        self._timeout = request_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ LiveStreamer

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        """Probe without side effects: a token (cached or signed in), then a plain HTTP GET
        of the STREAM URL without an upgrade: any HTTP answer proves the service is reachable
        (a TCP connect alone would also succeed against a proxy that cuts everything), and no
        WebSocket means no stream starts."""
        await self._tokens.token()
        url = "http" + self._config.url.removeprefix("ws")
        try:
            async with self._http().get(
                url,
                ssl=self._ssl if self._ssl is not None else False,
                timeout=aiohttp.ClientTimeout(total=self._connect_timeout + self._timeout),
                allow_redirects=False,
            ) as resp:
                await read_prefix(resp, PROBE_BODY_MAX_BYTES)  # any answer will do
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"dice STREAM host unreachable: {type(exc).__name__}",
                transport="websocket",
            ) from None
        return ServiceConfiguration(
            formats=(DataFormat("pcm", self._upload_rate, 16, 1),),
            recording_locales=("en-US", "fr-CA"),
            default_locale=self._config.language,
            max_recording_duration_s=self._config.stream_limit_s,
            warn_before_s=self._config.limit_warning_s,
        )

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> DiceStream:
        if (data_format.kind, data_format.bitcount, data_format.channels) != ("pcm", 16, 1):
            raise UplinkError(
                ErrorKind.INVALID,
                f"dice takes PCM16 mono only, not {data_format.kind} "
                f"{data_format.bitcount}-bit x{data_format.channels}",
                transport="websocket",
                retryable=False,
            )
        label = {"recording_id": recording.guid}
        return await self._open(
            session, recording.sequence, data_format.sample_rate_hz, starting_offset, label
        )

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        raw = self._state.get(summary_key(session.correlation_id))
        summary: dict[str, Any] = json.loads(raw) if raw else {}
        ends = {int(k): int(v) for k, v in dict(summary.get("bytes", {})).items()}
        refs = m.summary_references(
            int(summary.get("items", 0)), list(summary.get("titles", [])), summary.get("streams", 0)
        )
        log.info("dice encounter complete", streams=summary.get("streams", 0), recordings=len(ends))
        return ProcessingStarted(
            session.correlation_id, len(ends), sum(ends.values()), references=refs
        )

    # ------------------------------------------------------------------ StoreForwardUploader

    async def create_session(self, session: SessionIdentity) -> None:
        return None  # streams need no session at the service

    async def upload_recording(
        self,
        session: SessionIdentity,
        recording_seq: int,
        length: int,
        read: ChunkReader,
        *,
        done: Sequence[int] = (),
        on_chunk: Callable[[int], Awaitable[None]] | None = None,
        chunk_bytes: int | None = None,
    ) -> FinalizeResult:
        """Bytes [0, length) as one stream (or, after a crash, from the confirmed offset)."""
        key = upload_key(session.correlation_id, recording_seq)
        kept = self._state.get(key)
        if kept == "done":
            return FinalizeResult(0, "already delivered")
        start = int(kept) if kept and kept.isdigit() else 0
        label = {"recording_seq": recording_seq}
        stream = await self._open(session, recording_seq, self._upload_rate, start, label)
        pos, saved = start, start
        try:
            while pos < length:
                data = await read(pos, min(length, pos + UPLOAD_READ_BYTES))
                await stream.send(pos, data)
                pos += len(data)
                if stream.confirmed > saved:  # a retry continues from here, not from 0
                    saved = stream.confirmed
                    self._state.put(key, str(saved))
            final = await stream.close()
        except BaseException:
            await stream.abort()
            if stream.confirmed > saved:  # what the broken stream proved it received
                self._state.put(key, str(stream.confirmed))
            raise
        if final < length:
            raise UplinkError(
                ErrorKind.CONFLICT,
                f"stream confirmed {final} of {length} bytes",
                transport="websocket",
            )
        self._state.put(key, "done")
        log.info("dice upload complete", recording_seq=recording_seq, stream=stream.track_id)
        return FinalizeResult(0, stream.track_id)

    # ------------------------------------------------------------------ streams

    async def _open(
        self,
        session: SessionIdentity,
        seq: int,
        sample_rate: int,
        offset: int,
        label: dict[str, Any],
    ) -> DiceStream:
        track = str(uuid.uuid4())
        encounter = session.correlation_id

        async def on_result(stream: DiceStream) -> None:
            self._record(encounter, seq, stream)

        async def attempt(token: str) -> DiceStream:
            ws = await self._connect(token)
            stream = DiceStream(
                ws,
                self._config,
                track_id=track,
                sample_rate=sample_rate,
                start_offset=offset,
                sequence=seq,
                timeout_s=self._timeout,
                label=label,
                on_result=on_result,
            )
            try:
                await stream.start(m.stream_request(self._config, track, sample_rate))
            except BaseException:
                await stream.abort()
                raise
            return stream

        stream = await call_with_token(self._tokens, attempt)
        log.info("dice stream opened", **label, offset=offset, stream=track)
        return stream

    def _record(self, encounter: str, seq: int, stream: DiceStream) -> None:
        """A stream ended: add its counts to the encounter summary, seal its note."""
        received = stream.confirmed > stream.start_offset or stream.transcript.count
        if not received and stream.note is None:
            return  # an open that failed, or a stream that carried nothing
        titles = stream.note.titles if stream.note else ()
        key = summary_key(encounter)
        self._state.put(
            key,
            add_to_summary(
                self._state.get(key), seq, stream.confirmed, stream.transcript.count, titles
            ),
        )
        if self._notes is None or (stream.note is None and not stream.transcript.count):
            return
        document = {
            "recording_seq": seq,
            "start_offset": stream.start_offset,
            "end_offset": stream.confirmed,
            "sample_rate": stream.sample_rate,
            "stream": stream.track_id,
            "note": m.note_json(stream.note) if stream.note else None,
            "note_error": stream.note_error,
            "transcript": stream.transcript.as_json(),
        }
        self._notes.save(encounter, stream.track_id, document)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout
                )
            )
        return self._session

    async def _connect(self, token: str) -> aiohttp.ClientWebSocketResponse:
        try:
            async with asyncio.timeout(self._connect_timeout + self._timeout):
                return await self._http().ws_connect(
                    self._config.url,
                    headers={"Authorization": f"Bearer {token}"},
                    ssl=self._ssl if self._ssl is not None else False,
                    heartbeat=self._heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_close=min(self._timeout, 5.0)),
                    receive_timeout=None,
                    autoping=False,  # pongs must reach the reader: they are the acks
                    max_msg_size=DICE_MESSAGE_MAX_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            kind = kind_for_http_status(exc.status)
            raise UplinkError(
                kind,
                f"dice STREAM upgrade refused with HTTP {exc.status}",
                transport="websocket",
                status=exc.status,
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"dice STREAM connect failed: {type(exc).__name__}",
                transport="websocket",
            ) from None
