"""A gRPC RecordAmbient stream that breaks reports every ack the server sent before the break.

Found under load in `make test` (tests/integration/uplinks/test_aas_grpc.py): a write can
fail on the dead call before the response reader has taken the acks that arrived ahead of
the status, and `confirmed` then lagged the server by a chunk. Nothing was lost (a resume
starts from what the server says it holds), but the stream's own account of what the
server confirmed must not depend on which task ran first. The call here is a stand-in with
grpc.aio's order: queued responses, then the status; every write fails at once.
"""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.uplinks.aas.grpc_stream import GrpcRecording
from edge_recorder.uplinks.aas.recording import Waits
from edge_recorder.uplinks.base import DataFormat, ErrorKind, RecordingRef, UplinkError
from edge_recorder.uplinks.live import LiveRecordingState

CUT = aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, aio.Metadata(), aio.Metadata(), "cut")


class CutCall:
    """The server stored two chunks, acked them, then cut the stream."""

    def __init__(self) -> None:
        self._responses = [
            pb.RecordAmbientResponse(data_stored=pb.DataStored(data_stored=n)) for n in (3200, 6400)
        ]
        self.cancelled = False

    async def read(self) -> pb.RecordAmbientResponse:
        if self._responses:
            return self._responses.pop(0)
        raise CUT

    async def write(self, request: pb.RecordAmbientRequest) -> None:
        raise CUT

    def cancel(self) -> None:
        self.cancelled = True


async def test_a_failed_write_reports_the_acks_already_received() -> None:
    state = LiveRecordingState("grpc", 0, 1)
    state.next_offset = 6400  # two chunks went out before; their acks are on the way
    recording = GrpcRecording(CutCall(), RecordingRef.new(1), DataFormat(), state, Waits())
    with pytest.raises(UplinkError) as info:
        await recording.send(6400, b"\0" * 3200)
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.retryable
    assert recording.confirmed == 6400  # both acks, though the write failed first
    await recording.abort()
