"""Types every uplink shares: typed errors, who a session is, and what the delivery engine calls.

The delivery engine never sees a transport's own exceptions (aiohttp, grpc): each client turns
them into one `UplinkError` whose `kind` says what happened and whose `retryable` says whether
waiting and trying again can help. That keeps the engine's retry policy pure logic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol


class ErrorKind(StrEnum):
    """What went wrong, in the terms the delivery engine acts on."""

    AUTH = "auth"  # 401 / UNAUTHENTICATED after one refresh, or the token endpoint refused us
    FORBIDDEN = "forbidden"  # 403 / PERMISSION_DENIED: not allow-listed, missing user identity
    NOT_FOUND = "not_found"  # 404 / NOT_FOUND: no ambient session, or a forgotten recording
    INVALID = "invalid"  # 400 / INVALID_ARGUMENT: the request itself is wrong; never retry
    CONFLICT = "conflict"  # offsets disagree (gap, different bytes at a stored offset)
    THROTTLED = "throttled"  # 429 / RESOURCE_EXHAUSTED
    UNAVAILABLE = "unavailable"  # network down, connection reset, deadline, 502/503/504
    SERVER = "server"  # 500 / INTERNAL / UNKNOWN
    PROTOCOL = "protocol"  # the server answered something we cannot parse


_RETRYABLE_BY_DEFAULT = frozenset(
    {ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE, ErrorKind.SERVER, ErrorKind.PROTOCOL}
)

Transport = Literal["grpc", "rest", "websocket", "http2", "auth"]

#: `UplinkError.status` when a live transport's open got no answer at all within the request
#: timeout (a silent server, not a refusal): the engine stops trying live for that recording.
NO_ANSWER = "no-answer"


class UplinkError(Exception):
    """A failed uplink call; the message is the server's own words when it gave any.

    Never carries a token or audio: messages come from status lines and error bodies only.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        transport: Transport,
        status: int | str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.transport: Transport = transport
        self.status = status
        self.retryable = kind in _RETRYABLE_BY_DEFAULT if retryable is None else retryable
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        where = f"{self.transport} {self.status}" if self.status is not None else self.transport
        return f"{self.kind.value} ({where}): {self.message}"

    def __repr__(self) -> str:
        return (
            f"UplinkError(kind={self.kind.value!r}, transport={self.transport!r}, "
            f"status={self.status!r}, retryable={self.retryable}, message={self.message!r})"
        )


def kind_for_http_status(status: int) -> ErrorKind:
    """The error kind of an HTTP status (REST and WebSocket upgrade answers)."""
    if status == 400 or status == 422:
        return ErrorKind.INVALID
    if status == 401:
        return ErrorKind.AUTH
    if status == 403:
        return ErrorKind.FORBIDDEN
    if status in (404, 410):
        return ErrorKind.NOT_FOUND
    if status == 409:
        return ErrorKind.CONFLICT
    if status == 429:
        return ErrorKind.THROTTLED
    if status in (408, 502, 503, 504):
        return ErrorKind.UNAVAILABLE
    if status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.INVALID


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """A `Retry-After` given in seconds (never negative); None when absent or not a number."""
    raw = (headers or {}).get("Retry-After")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None


def lost_recording_error(transport: Transport, held: int, starting_offset: int) -> UplinkError:
    """The server holds less than it once confirmed: it forgot the recording (not retryable).

    Resuming would leave a hole, so the delivery engine must re-deliver the whole recording
    (REST store-and-forward) instead.
    """
    return UplinkError(
        ErrorKind.NOT_FOUND,
        f"server holds {held} bytes of the recording but had confirmed {starting_offset}: "
        "the recording was lost server-side",
        transport=transport,
        retryable=False,
    )


# ---------------------------------------------------------------------------------------------
# Who the session is


@dataclass(frozen=True)
class SessionIdentity:
    """One ambient session (encounter) as the service sees it. Not logged: holds a user id."""

    correlation_id: str
    customer_id: str
    partner_id: str
    product_id: str
    # People and EHR references stay out of repr(), so a stray log line cannot carry them.
    external_user_id: str | None = field(default=None, repr=False)
    user_guid: str | None = field(default=None, repr=False)
    ehr_instance_id: str | None = field(default=None, repr=False)
    locale: str = "en-US"
    actions: tuple[str, ...] = ("generate-draft",)

    @classmethod
    def local(cls, correlation_id: str, locale: str = "en-US") -> SessionIdentity:
        """An encounter for a service that needs no AAS partner identity (Corti, Dice, AWS)."""
        return cls(correlation_id, customer_id="", partner_id="", product_id="", locale=locale)


@dataclass(frozen=True)
class RecordingRef:
    """One recording of a session: a GUID for gRPC/WebSocket, a 1-based number for REST."""

    guid: str
    sequence: int

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise ValueError("recording sequence numbers start at 1")
        uuid.UUID(self.guid)  # the live service rejects a non-GUID recordingId

    @classmethod
    def new(cls, sequence: int) -> RecordingRef:
        return cls(str(uuid.uuid4()), sequence)


@dataclass(frozen=True)
class DataFormat:
    """The audio encoding announced when a recording opens (the proto's data-format one-of)."""

    kind: Literal["pcm", "opus", "webm_opus", "byte_stream"] = "pcm"
    sample_rate_hz: int = 16000
    bitcount: int = 16
    channels: int = 1

    @property
    def bytes_per_second(self) -> int | None:
        """PCM byte rate, so a close can state the recording's length in seconds."""
        if self.kind != "pcm":
            return None
        return self.sample_rate_hz * self.bitcount // 8 * self.channels


@dataclass(frozen=True)
class ServiceConfiguration:
    """What RetrieveConfiguration answered; the device falls back to `[aas]` when offline."""

    formats: tuple[DataFormat, ...] = ()
    recording_locales: tuple[str, ...] = ()
    report_locales: tuple[str, ...] = ()
    ux_locales: tuple[str, ...] = ()
    default_locale: str | None = None
    max_recording_duration_s: float | None = None
    warn_before_s: float | None = None
    max_chunk_bytes: int | None = None


@dataclass(frozen=True)
class ProcessingStarted:
    """StartProcessing's answer: how many recordings and bytes the service will process.

    `references` are the service's own ids for what processing produced (a transcript or
    document id), shown in status; opaque ids only, never text the service generated.
    """

    correlation_id: str
    recording_count: int
    total_bytes: int
    references: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------------
# What the delivery engine calls


@dataclass(frozen=True)
class Ack:
    """The server holds the recording's first `stored` bytes."""

    stored: int
    final: bool = False  # the recording-close answer


class LiveRecording(Protocol):
    """An open recording on a live transport (gRPC RecordAmbient or WebSocket /ws)."""

    @property
    def resume_offset(self) -> int:
        """Bytes the server already held when the recording opened: send from here."""
        ...

    @property
    def confirmed(self) -> int:
        """Highest byte count the server has acknowledged as stored."""
        ...

    @property
    def open_confirmed(self) -> bool:
        """The server answered the open with what it holds. Without that answer the stream
        starts at byte 0 and, once broken, cannot be resumed at an offset."""
        ...

    @property
    def answered(self) -> bool:
        """The server has sent anything at all on this stream (an open answer, an ack)."""
        ...

    @property
    def sequence(self) -> int:
        """The recording's 1-based number in the session, as the server assigned or confirmed."""
        ...

    async def send(self, offset: int, data: bytes) -> None:
        """Send `data` at byte `offset` of the recording (waits for transport flow control)."""
        ...

    def acks(self) -> AsyncIterator[Ack]:
        """Acknowledgements as they arrive; ends after the close answer or raises UplinkError."""
        ...

    async def wait_confirmed(self, offset: int, timeout_s: float) -> int:
        """Wait until the server confirmed at least `offset` bytes; returns the count."""
        ...

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        """Close the recording; returns the bytes the server confirmed holding."""
        ...

    async def abort(self) -> None:
        """Drop the stream without closing the recording (it can be resumed later)."""
        ...


class LiveStreamer(Protocol):
    """A live transport: open/resume recordings, fetch configuration, start processing."""

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration: ...

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> LiveRecording: ...

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted: ...

    async def aclose(self) -> None: ...


class UplinkState(Protocol):
    """Small facts an uplink must remember across restarts (the service's ids for an
    encounter or an uploaded part), persisted atomically by the delivery engine before `put`
    returns. Keys are the uplink's own (prefix them with the service name); values are ids,
    never audio or patient data."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...

    def drop(self, prefix: str) -> None:
        """Forget every key starting with `prefix` (the encounter left the spool)."""
        ...


ChunkReader = Callable[[int, int], Awaitable[bytes]]
"""`read(start, end)` → exactly the recording's bytes in [start, end) (from the spool)."""


class LiveTap(Protocol):
    """A real-time copy of the recording being captured, for a service whose durable path is
    the upload (Corti's `/streams`: live transcripts and facts during the visit). Best effort:
    it never confirms bytes for the spool, and after a break it rejoins at the live edge."""

    async def stream(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        start: int,
        chunks: AsyncIterator[bytes],
        read: ChunkReader,
    ) -> None:
        """Stream `chunks` (the recording's bytes from offset `start`, as captured) until they
        end (the recording closed), then end the stream; raises UplinkError on a break."""
        ...


@dataclass(frozen=True)
class FinalizeResult:
    """The finalize answer; `total_chunks` is what was declared."""

    total_chunks: int
    request_id: str


class StoreForwardUploader(Protocol):
    """Store-and-forward of a closed recording, idempotently (AAS: REST chunks + finalize;
    Corti: file uploads; Dice and AWS: a stream from byte 0)."""

    async def create_session(self, session: SessionIdentity) -> None: ...

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
    ) -> FinalizeResult: ...

    async def aclose(self) -> None: ...
