"""What the AAS gRPC and WebSocket recordings share: state reporting and the close message."""

from __future__ import annotations

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.aas import messages as msgs
from edge_recorder.uplinks.base import DataFormat, RecordingRef
from edge_recorder.uplinks.live import LiveRecordingState, StateReporting


class LiveRecordingBase(StateReporting):
    """What the gRPC and WebSocket recordings share: the state they report from.

    Subclasses add the transport: `send`, `close`, `abort` and the response reader.
    """

    def __init__(
        self,
        recording: RecordingRef,
        data_format: DataFormat,
        state: LiveRecordingState,
        timeout_s: float,
    ) -> None:
        self.recording = recording
        self.data_format = data_format
        self._state = state
        self._timeout = timeout_s

    def _begin_close(self, reason: str, length_s: float | None) -> pb.RecordingCloseRequest:
        """Refuse to close a failed stream; otherwise the RecordingClose message to send."""
        if self._state.error is not None:
            raise self._state.error
        self._state.closing = True
        seconds = msgs.length_seconds(self.data_format, self._state.next_offset, length_s)
        return msgs.recording_close(self.recording, seconds, reason)
