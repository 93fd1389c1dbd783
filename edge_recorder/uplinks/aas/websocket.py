"""AAS over WebSocket (aiohttp): `/ws`, `/ws/retrieveConfiguration`, `/ws/startProcessing`.

Client text frames carry a header block (`Path=`, `X-MS-Request-Id=`, `X-Timestamp=`), a blank
line, then the proto3 JSON of the message; audio goes as binary frames whose content is the
JSON `{"DataStart": offset, "Data": base64}`. Server text frames arrive with or without the
header block, so the parser accepts both. The semantics (open answer with bytes held, offsets,
`dataStored` progress, close answer) are the gRPC ones; see `live.LiveRecordingState`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp
from google.protobuf import json_format

from edge_recorder._proto.ambient.audio.v1 import audio_streaming_pb2 as pb
from edge_recorder.config.model import Config
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.aas import messages as msgs
from edge_recorder.uplinks.aas.recording import LiveRecordingBase, Waits
from edge_recorder.uplinks.aas.rest import error_from_response, service_ssl_context
from edge_recorder.uplinks.aas.ws_framing import (
    Closed,
    TextFrame,
    close_error,
    data_chunk_frame,
    format_text_frame,
    message_json,
    parse_response,
    parse_text_frame,
)
from edge_recorder.uplinks.auth import TokenProvider, call_with_token
from edge_recorder.uplinks.base import (
    NO_ANSWER,
    DataFormat,
    ErrorKind,
    ProcessingStarted,
    RecordingRef,
    ServiceConfiguration,
    SessionIdentity,
    UplinkError,
)
from edge_recorder.uplinks.limits import STREAM_MESSAGE_MAX_BYTES, ws_too_large
from edge_recorder.uplinks.live import LiveRecordingState

log = get_logger(__name__)
WS_API_VERSION = "1"


def _protocol_error(message: str) -> UplinkError:
    return UplinkError(ErrorKind.PROTOCOL, message, transport="websocket")


async def receive_text(
    ws: aiohttp.ClientWebSocketResponse, timeout_s: float | None
) -> TextFrame | Closed:
    """The next text frame, or how the socket closed (binary from the server is an error)."""
    msg = await ws.receive(timeout=timeout_s)
    if (
        too_large := ws_too_large(msg, STREAM_MESSAGE_MAX_BYTES, "a message on the AAS WebSocket")
    ) is not None:
        raise too_large
    if msg.type == aiohttp.WSMsgType.CLOSE:
        return Closed(ws.close_code or int(msg.data or 0) or None, str(msg.extra or ""))
    if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
        return Closed(ws.close_code, "")
    if msg.type == aiohttp.WSMsgType.BINARY:
        raise _protocol_error("server sent a binary frame")
    try:
        return parse_text_frame(str(msg.data))
    except ValueError as exc:
        raise _protocol_error(str(exc)) from None


# ------------------------------------------------------------------ recording


class WsRecording(LiveRecordingBase):
    """One open recording on `/ws` (implements `base.LiveRecording`)."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        recording: RecordingRef,
        data_format: DataFormat,
        state: LiveRecordingState,
        waits: Waits,
    ) -> None:
        super().__init__(recording, data_format, state, waits)
        self._ws = ws
        self._reader = asyncio.create_task(self._read_frames())

    async def send(self, offset: int, data: bytes) -> None:
        self._state.check_send(offset, len(data))
        await self._send(self._ws.send_bytes(data_chunk_frame(offset, data)))

    async def close(self, reason: str = "stop", length_s: float | None = None) -> int:
        body = message_json(self._begin_close(reason, length_s))
        await self._send(self._ws.send_str(format_text_frame("RecordingClose", body)))
        try:
            final = await self._state.wait_final(self._waits.close_s)
        finally:
            await self._shutdown()
        log.info("recording closed", transport="websocket", stored_bytes=final, seq=self.sequence)
        return final

    async def abort(self) -> None:
        await self._shutdown()

    async def _send(self, op: Any) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await op
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            err = UplinkError(
                ErrorKind.UNAVAILABLE,
                f"WebSocket send failed: {type(exc).__name__}",
                transport="websocket",
            )
            await self._state.failed(err)
            raise self._state.error or err from None

    async def _read_frames(self) -> None:
        try:
            while True:
                frame = await receive_text(self._ws, timeout_s=None)
                if isinstance(frame, Closed):
                    if self._state.final is None:
                        await self._state.failed(close_error(frame, "recordingCloses"))
                    return
                try:
                    response = parse_response(frame.body)
                except (ValueError, json_format.ParseError) as exc:
                    raise _protocol_error(f"unreadable server message: {exc}") from None
                which = response.WhichOneof("response")
                if which == "recording_opens":
                    opened = response.recording_opens
                    await self._state.opened(opened.data_stored, opened.sequence_number)
                elif which == "data_stored":
                    await self._state.stored(response.data_stored.data_stored)
                elif which == "recording_closes":
                    await self._state.closed(response.recording_closes.data_stored)
        except UplinkError as err:
            await self._state.failed(err)
        except (aiohttp.ClientError, ConnectionError) as exc:
            await self._state.failed(
                UplinkError(
                    ErrorKind.UNAVAILABLE,
                    f"WebSocket lost: {type(exc).__name__}",
                    transport="websocket",
                )
            )

    async def _shutdown(self) -> None:
        await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._state.ended()


# ------------------------------------------------------------------ client


class AasWebSocketClient:
    """WebSocket transport to AAS (implements `base.LiveStreamer`)."""

    def __init__(
        self,
        ws_url: str,
        tokens: TokenProvider,
        *,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        open_answer_s: float = 5.0,
        close_answer_s: float = 60.0,
    ) -> None:
        self._waits = Waits(request_timeout_s, open_answer_s, close_answer_s)
        self._base = ws_url.rstrip("/")
        self._tokens = tokens
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._heartbeat = heartbeat_s
        self._connect_timeout = connect_timeout_s
        self._timeout = request_timeout_s
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: Config, tokens: TokenProvider) -> AasWebSocketClient:
        aas, uplink = config.aas, config.uplink
        if not aas.ws_url:
            raise ValueError("aas.ws_url is not set")
        secure = aas.ws_url.startswith("wss://")
        if aas.tls and not secure:
            raise ValueError("aas.tls = true needs a wss:// aas.ws_url")
        return cls(
            aas.ws_url,
            tokens,
            ssl_context=service_ssl_context(aas.ca_file, aas.client_cert_file, aas.client_key_file)
            if secure
            else None,
            heartbeat_s=uplink.keepalive_s,
            connect_timeout_s=uplink.connect_timeout_s,
            request_timeout_s=uplink.request_timeout_s,
            open_answer_s=aas.open_answer_s,
            close_answer_s=aas.close_answer_s,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _connect(
        self, path: str, token: str, session: SessionIdentity
    ) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            # No total timeout: a recording socket lives for the whole encounter.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout
                )
            )
        headers = {
            "Authorization": f"Bearer {token}",
            "product-id": session.product_id,
            **dict(msgs.identity_metadata(session)),
        }
        try:
            async with asyncio.timeout(self._connect_timeout + self._timeout):  # upgrade answer
                return await self._session.ws_connect(
                    f"{self._base}{path}",
                    params={"api-version": WS_API_VERSION},
                    headers=headers,
                    ssl=self._ssl,
                    heartbeat=self._heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._timeout),
                    receive_timeout=None,
                    autoping=True,
                    max_msg_size=STREAM_MESSAGE_MAX_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            # aiohttp discards the refusal's body; the status and Retry-After survive.
            err = error_from_response(exc.status, "", exc.headers)
            err.message = f"WebSocket upgrade to {path} refused with HTTP {exc.status}"
            raise err from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                f"WebSocket connect to {path} failed: {type(exc).__name__}",
                transport="websocket",
            ) from None

    async def _request(
        self, path: str, frame_path: str, body: dict[str, Any] | None, session: SessionIdentity
    ) -> Any:
        """Connect to `path`, send one request (if any), return the JSON answer, close."""

        async def attempt(token: str) -> Any:
            ws = await self._connect(path, token, session)
            try:
                if body is not None:
                    await ws.send_str(format_text_frame(frame_path, body))
                frame = await receive_text(ws, self._timeout)
                if isinstance(frame, Closed):
                    raise close_error(frame, frame_path)
                return frame.body
            except TimeoutError:
                raise UplinkError(
                    ErrorKind.UNAVAILABLE,
                    f"no answer to {frame_path} within {self._timeout:g}s",
                    transport="websocket",
                ) from None
            finally:
                await ws.close()

        return await call_with_token(self._tokens, attempt)

    async def retrieve_configuration(self, session: SessionIdentity) -> ServiceConfiguration:
        # The service answers on connect: partner and customer travel in the upgrade headers.
        answer = await self._request(
            "/ws/retrieveConfiguration", "RetrieveConfiguration", None, session
        )
        response = pb.RetrieveConfigurationResponse()
        try:
            json_format.ParseDict(answer, response, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise _protocol_error(f"unreadable configuration: {exc}") from None
        return msgs.configuration_from_pb(response)

    async def start_processing(
        self, session: SessionIdentity, recording_guids: Sequence[str] = ()
    ) -> ProcessingStarted:
        body = message_json(msgs.start_processing_request(session, recording_guids))
        answer = await self._request("/ws/startProcessing", "StartProcessing", body, session)
        response = pb.StartProcessingResponse()
        try:
            json_format.ParseDict(answer, response, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise _protocol_error(f"unreadable StartProcessing answer: {exc}") from None
        result = msgs.processing_started_from_pb(response)
        log.info(
            "processing started", transport="websocket", recording_count=result.recording_count
        )
        return result

    async def open_recording(
        self,
        session: SessionIdentity,
        recording: RecordingRef,
        data_format: DataFormat,
        starting_offset: int = 0,
        reason: str = "ui",
    ) -> WsRecording:
        opening = msgs.recording_open(session, recording, data_format, starting_offset, reason)
        body = message_json(opening, int_fields=("startingOffset",))

        async def attempt(token: str) -> WsRecording:
            ws = await self._connect("/ws", token, session)
            try:
                async with asyncio.timeout(self._timeout):
                    await ws.send_str(format_text_frame("RecordingOpen", body))
            except BaseException:
                await ws.close()
                raise
            state = LiveRecordingState("websocket", 0, recording.sequence, open_confirmed=False)
            rec = WsRecording(ws, recording, data_format, state, self._waits)
            await rec.handshake("websocket", starting_offset)
            return rec

        try:
            rec = await call_with_token(self._tokens, attempt)
        except TimeoutError:
            raise UplinkError(
                ErrorKind.UNAVAILABLE,
                "RecordingOpen could not be sent",
                transport="websocket",
                status=NO_ANSWER,
            ) from None
        log.info(
            "recording opened",
            transport="websocket",
            seq=rec.sequence,
            resume_offset=rec.resume_offset,
            starting_offset=starting_offset,
        )
        return rec
