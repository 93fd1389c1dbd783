"""One signed event stream of an AWS listening session: open, send audio, count segments,
END_OF_SESSION, and the conservative watermark the delivery engine records as confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.aws import eventstream as es
from edge_recorder.uplinks.aws.protocol import (
    ServiceProfile,
    configuration_event,
    end_of_session,
    error_kind,
    parse_segment,
    request_headers,
)
from edge_recorder.uplinks.aws.signing import (
    Credentials,
    EventSigner,
    request_signature,
    sign_request,
)
from edge_recorder.uplinks.aws.transport import H2Request
from edge_recorder.uplinks.aws.watermark import StreamPlan, confirmed_offset
from edge_recorder.uplinks.base import Ack, ErrorKind, UplinkError
from edge_recorder.uplinks.limits import ERROR_BODY_MAX_BYTES

log = get_logger(__name__)

MAX_EVENT_AUDIO = 32 * 1024  # bytes of audio per audioEvent
RESERVE_STEP = 256 * 1024  # the session's sent-bytes bound is persisted this far ahead


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    authority: str

    @classmethod
    def of(cls, cfg: AwsScribeConfig, profile: ServiceProfile) -> Endpoint:
        url = cfg.endpoint_url or "https://" + profile.host_template.format(region=cfg.region)
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        return cls(host, port, host if port == 443 else f"{host}:{port}")


@dataclass(frozen=True)
class AudioSpec:
    encoding: str  # media-encoding header value
    sample_rate: int
    byte_rate: int | None  # PCM only: offsets in seconds map to bytes
    block_align: int


class AwsStream:
    """A `LiveRecording` on one HTTP/2 request (see `base.LiveRecording`)."""

    def __init__(
        self,
        plan: StreamPlan,
        sequence: int,
        spec: AudioSpec,
        reserve: Callable[[int], None],
        timeout_s: float,
        counts: list[int] | None = None,
    ) -> None:
        self.plan = plan
        self._sequence = sequence
        self._spec = spec
        self._reserve = reserve  # persist "this stream sent at most N bytes" before sending
        self._reserved = 0  # persisted bound of the audio bytes this stream may have sent
        self._attempted = 0  # audio bytes handed to the transport
        self._timeout_s = timeout_s
        self._sent_to = plan.start
        self._confirmed = plan.start
        self._changed = asyncio.Event()
        self._acks: asyncio.Queue[Ack | UplinkError | None] = asyncio.Queue()
        self._error: UplinkError | None = None
        self._final_sent = False
        self._request: H2Request | None = None
        self._signer: EventSigner | None = None
        self._reader: asyncio.Task[None] | None = None
        self._profile: ServiceProfile | None = None
        self.counts = counts if counts is not None else [0, 0]  # [final, partial] segments

    # ---- opening -----------------------------------------------------------------------------
    async def open(
        self,
        profile: ServiceProfile,
        cfg: AwsScribeConfig,
        endpoint: Endpoint,
        creds: Credentials,
        connect_timeout_s: float,
    ) -> None:
        self._profile = profile
        headers = request_headers(
            profile,
            cfg,
            endpoint.authority,
            self.plan.session_id,
            self._spec.sample_rate,
            self._spec.encoding,
        )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        signed = await sign_request(
            "POST", profile.path, headers, creds, cfg.region, profile.signing_name, now
        )
        request = await H2Request.open(
            endpoint.host,
            endpoint.port,
            profile.path,
            signed,
            ca_file=cfg.ca_file,
            connect_timeout_s=connect_timeout_s,
        )
        self._request = request
        try:
            status, answer = await request.response(connect_timeout_s + self._timeout_s)
            if status != 200:
                raise await self._http_error(status, answer)
            self._signer = EventSigner(
                creds, cfg.region, profile.signing_name, request_signature(signed)
            )
            self._reader = asyncio.create_task(self._read())
            config = es.event(
                profile.events[0], configuration_event(profile, cfg), "application/json"
            )
            await self._write(config)
        except BaseException:
            request.close()
            raise

    async def _http_error(self, status: int, headers: list[tuple[str, str]]) -> UplinkError:
        assert self._request is not None
        body = b""
        with contextlib.suppress(UplinkError, TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                async for chunk in self._request.body():
                    body += chunk
                    if len(body) >= ERROR_BODY_MAX_BYTES:  # a snippet is all a message shows
                        break
        etype = dict((k.lower(), v) for k, v in headers).get("x-amzn-errortype", "")
        message = _message(body) or f"HTTP {status}"
        kind = error_kind(etype, status)
        return UplinkError(
            kind, f"{etype.split(':')[0] or 'error'}: {message}", transport="http2", status=status
        )

    # ---- LiveRecording ---------------------------------------------------------------------
    @property
    def resume_offset(self) -> int:
        return self.plan.start

    @property
    def confirmed(self) -> int:
        return self._confirmed

    @property
    def sequence(self) -> int:
        return self._sequence

    @property
    def open_confirmed(self) -> bool:
        return True  # the stream opened with HTTP 200; resumption is the service's own

    @property
    def answered(self) -> bool:
        return True

    async def send(self, offset: int, data: bytes) -> None:
        if offset != self._sent_to:
            raise UplinkError(
                ErrorKind.CONFLICT,
                f"send at {offset}, stream is at {self._sent_to}",
                transport="http2",
            )
        assert self._profile is not None
        for start in range(0, len(data), MAX_EVENT_AUDIO):
            piece = data[start : start + MAX_EVENT_AUDIO]
            self._attempted += len(piece)  # counted before the write: it may arrive anyway
            if self._attempted > self._reserved:
                self._reserved = self._attempted + RESERVE_STEP
                self._reserve(self._reserved)
            audio = es.event(self._profile.events[1], piece, "application/octet-stream")
            await self._write(audio)
            self._sent_to += len(piece)

    def acks(self) -> AsyncIterator[Ack]:
        return self._ack_iter()

    async def _ack_iter(self) -> AsyncIterator[Ack]:
        while True:
            item = await self._acks.get()
            if item is None:
                return
            if isinstance(item, UplinkError):
                raise item
            yield item

    async def wait_confirmed(self, offset: int, timeout_s: float) -> int:
        async with asyncio.timeout(timeout_s):
            while self._confirmed < offset:
                self._raise_if_failed()
                self._changed.clear()
                await self._changed.wait()
        return self._confirmed

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        """END_OF_SESSION, the empty signed frame, then wait for the service to end cleanly:
        only then does it provably hold everything sent."""
        assert self._profile is not None and self._reader is not None
        await self._write(
            es.event(self._profile.events[2], end_of_session(self._profile), "application/json")
        )
        self._final_sent = True
        await self._write(b"", end=True)
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(self._reader)
        except TimeoutError as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE, "no end of stream after END_OF_SESSION", transport="http2"
            ) from exc
        self._raise_if_failed()
        self._confirm(self._sent_to)
        await self._acks.put(Ack(self._sent_to, final=True))
        await self._acks.put(None)
        if self._request is not None:
            self._request.close()
        self._reserve(self._attempted)
        return self._sent_to

    async def abort(self) -> None:
        self._reserve(self._attempted)  # exact bound now: the next stream resumes after it
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._request is not None:
            self._request.close()

    # ---- internals ---------------------------------------------------------------------------
    async def _write(self, payload: bytes, end: bool = False) -> None:
        self._raise_if_failed()
        assert self._request is not None and self._signer is not None
        await self._request.write(self._signer.envelope(payload), end, self._timeout_s)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _fail(self, error: UplinkError) -> None:
        if self._error is None:
            self._error = error
            self._acks.put_nowait(error)
            self._changed.set()

    def _confirm(self, offset: int) -> None:
        if offset > self._confirmed:
            self._confirmed = offset
            self._acks.put_nowait(Ack(offset))
            self._changed.set()

    async def _read(self) -> None:
        assert self._request is not None and self._profile is not None
        decoder = es.Decoder()
        try:
            async for chunk in self._request.body():
                for msg in decoder.feed(chunk):
                    self._on_message(msg)
        except es.FramingError as exc:
            self._fail(UplinkError(ErrorKind.PROTOCOL, str(exc), transport="http2"))
            self._request.close()  # past broken framing nothing can be read: stop receiving
        except UplinkError as exc:
            self._fail(exc)
        else:
            if self._error is None and not self._final_sent:
                self._fail(
                    UplinkError(
                        ErrorKind.UNAVAILABLE, "service ended the stream early", transport="http2"
                    )
                )

    def _on_message(self, msg: es.Message) -> None:
        assert self._profile is not None
        mtype = msg.headers.get(":message-type")
        if mtype == "exception" or mtype == "error":
            etype = str(msg.headers.get(":exception-type") or msg.headers.get(":error-code"))
            kind = error_kind(etype, None)
            self._fail(UplinkError(kind, f"{etype}: {_message(msg.payload)}", transport="http2"))
            return
        if msg.headers.get(":event-type") != self._profile.events[3]:
            return  # other events carry nothing the device needs
        try:
            seg = parse_segment(self._profile, msg.payload)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self._fail(
                UplinkError(
                    ErrorKind.PROTOCOL,
                    f"bad transcriptEvent: {type(exc).__name__}",
                    transport="http2",
                )
            )
            return
        self.counts[1 if seg.partial else 0] += 1
        if self._spec.byte_rate:
            self._confirm(
                confirmed_offset(
                    seg.end_s,
                    byte_rate=self._spec.byte_rate,
                    block_align=self._spec.block_align,
                    start=self.plan.start,
                    prior_sent=self.plan.prior_sent,
                    sent_to=self._sent_to,
                )
            )


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    return str(doc.get("Message") or doc.get("message") or "")[:200]
