"""What the AAS gRPC and WebSocket recordings share: state reporting, the close message, the
bounded waits, and the open handshake that tolerates a server which never answers it."""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.aas import messages as msgs
from edge_recorder.uplinks.base import (
    NO_ANSWER,
    DataFormat,
    ErrorKind,
    RecordingRef,
    Transport,
    UplinkError,
    lost_recording_error,
)
from edge_recorder.uplinks.live import LiveRecordingState, StateReporting


@dataclass(frozen=True)
class Waits:
    """Every wait of a live AAS stream is bounded: a silent server is an error, never a hang."""

    request_s: float = 30.0  # a write, an ack of bytes in flight
    open_s: float = 5.0  # recordingOpens (may never come: then stream from 0, unresumable)
    close_s: float = 60.0  # recordingCloses (live closes have taken over 30 s)


class LiveRecordingBase(StateReporting):
    """What the gRPC and WebSocket recordings share: the state they report from.

    Subclasses add the transport: `send`, `close`, `abort` and the response reader.
    """

    def __init__(
        self,
        recording: RecordingRef,
        data_format: DataFormat,
        state: LiveRecordingState,
        waits: Waits,
    ) -> None:
        self.recording = recording
        self.data_format = data_format
        self._state = state
        self._waits = waits
        self._timeout = waits.request_s

    async def abort(self) -> None:
        raise NotImplementedError

    async def handshake(self, transport: Transport, starting_offset: int) -> None:
        """Wait (bounded) for the open answer after RecordingOpen went out.

        No answer: the stream goes on from byte 0 (acks still prove what is stored), unless
        the open asked to resume at an offset, which a server that never answers opens has
        not shown it can do. Raises (after aborting) when the open cannot stand."""
        try:
            confirmed = await self._state.wait_opened(self._waits.open_s)
            if confirmed and self._state.resume_offset < starting_offset:
                raise lost_recording_error(transport, self._state.resume_offset, starting_offset)
            if not confirmed and starting_offset > 0:
                raise UplinkError(
                    ErrorKind.UNAVAILABLE,
                    f"no answer to a RecordingOpen resuming at byte {starting_offset} within "
                    f"{self._waits.open_s:g}s: the service has not shown it can resume",
                    transport=transport,
                    status=NO_ANSWER,
                )
        except BaseException:
            await self.abort()
            raise

    def _begin_close(self, reason: str, length_s: float | None) -> pb.RecordingCloseRequest:
        """Refuse to close a failed stream; otherwise the RecordingClose message to send."""
        if self._state.error is not None:
            raise self._state.error
        self._state.closing = True
        seconds = msgs.length_seconds(self.data_format, self._state.next_offset, length_s)
        return msgs.recording_close(self.recording, seconds, reason)
