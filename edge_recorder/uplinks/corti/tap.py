"""Corti live mode: the recording being captured also goes to the interaction's `/streams`.

The durable path stays the upload of each closed recording (`uploader.py`): a real-time stream
cannot be resumed at a byte offset and nothing documents that streamed audio is kept, so the
stream is the engine's best-effort "tap" (`delivery/tap.py`), for live transcripts and facts
during the visit. Each stream: the interaction (created when the encounter starts), a fresh
token, `config` → `CONFIG_ACCEPTED`, the audio paced at real time in ~250 ms frames, `end` →
`usage` → `ENDED`. The audio is sent as a file would be: a WAV header first for pcm16 (its
sizes say "unknown length", as a WAV written to a pipe) [inferred: the docs list Ogg/WebM Opus,
FLAC, MP3, MP4 for streams; WAV for uploads], or the FLAC stream with its metadata header
(repeated before the audio when a stream rejoins at the live edge).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from edge_recorder.config.model import Config
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.auth import ClientCredentialsProvider
from edge_recorder.uplinks.base import (
    ChunkReader,
    DataFormat,
    ErrorKind,
    RecordingRef,
    SessionIdentity,
    UplinkError,
    UplinkState,
)
from edge_recorder.uplinks.corti import flac
from edge_recorder.uplinks.corti.state import Encounter
from edge_recorder.uplinks.corti.stream import CortiStream, stream_configuration, stream_url
from edge_recorder.uplinks.corti.uploader import CortiUploader

log = get_logger(__name__)

UNKNOWN_LENGTH = 0xFFFFFFFF  # RIFF/data sizes of a WAV whose length is not known yet
FLAC_HEADER_PROBE = 64 * 1024  # FLAC metadata is a few hundred bytes; read this much to parse


def streaming_wav_header(sample_rate: int, channels: int, bits: int = 16) -> bytes:
    """A PCM WAV header with "unknown" sizes, as `sox`/`arecord` write to a pipe."""
    block_align = channels * bits // 8
    return b"".join(
        (
            b"RIFF", UNKNOWN_LENGTH.to_bytes(4, "little"), b"WAVE",
            b"fmt ", (16).to_bytes(4, "little"), (1).to_bytes(2, "little"),
            channels.to_bytes(2, "little"), sample_rate.to_bytes(4, "little"),
            (sample_rate * block_align).to_bytes(4, "little"),
            block_align.to_bytes(2, "little"), bits.to_bytes(2, "little"),
            b"data", UNKNOWN_LENGTH.to_bytes(4, "little"),
        )
    )  # fmt: skip


class CortiTap:
    def __init__(
        self,
        config: Config,
        tokens: ClientCredentialsProvider,
        uploader: CortiUploader,
        state: UplinkState,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._uploader = uploader
        self._state = state

    async def stream(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        start: int,
        chunks: AsyncIterator[bytes],
        read: ChunkReader,
    ) -> None:
        corti = self._config.corti
        await self._uploader.create_session(session)  # the interaction, once per encounter
        interaction = Encounter(self._state, session.correlation_id).interaction
        if interaction is None:
            raise UplinkError(ErrorKind.NOT_FOUND, "no interaction to stream to",
                              transport="websocket")  # fmt: skip
        header = await self._header(data_format, start, read)
        rate = data_format.sample_rate_hz * data_format.channels * 2
        url = stream_url(corti.ws_base, interaction, corti.tenant, await self._tokens.token())
        stream = await CortiStream.open(
            url,
            stream_configuration(corti.primary_language),
            bytes_per_second=rate,
            timeout_s=self._config.uplink.connect_timeout_s,
        )
        log.info("corti live stream opened", recording_id=recording.guid, offset=start)
        try:
            if header:
                await stream.send(header)
            async for data in chunks:
                await stream.send(data)
            stats = await stream.end(self._config.uplink.request_timeout_s)
        finally:
            await stream.aclose()
        log.info("corti live stream ended", recording_id=recording.guid, bytes=stats.sent,
                 transcript_count=stats.transcripts, facts_count=stats.facts)  # fmt: skip

    async def _header(self, data_format: DataFormat, start: int, read: ChunkReader) -> bytes:
        if data_format.kind == "pcm":
            return streaming_wav_header(data_format.sample_rate_hz, data_format.channels)
        if start == 0:
            return b""  # the FLAC stream's own metadata comes first
        probe = await read(0, min(start, FLAC_HEADER_PROBE))
        try:
            header_bytes, _, _ = flac.metadata(probe)
        except ValueError as exc:
            raise UplinkError(ErrorKind.INVALID, f"cannot rejoin the FLAC stream: {exc}",
                              transport="websocket") from None  # fmt: skip
        return probe[:header_bytes]
