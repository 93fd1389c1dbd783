"""AAS REST store-and-forward: `PUT /ambient-sessions`, `PUT /audio/storeChunk`, finalize.

For recordings that closed while offline or were recovered after a restart. Chunk ids come
from spool byte offsets (`chunks.chunk_id_for_offset`), so every retry, even after a crash,
re-sends byte-identical chunks under the same ids and the service can treat them as
idempotent. Each call carries a fresh `x-correlation-id` trace id (not the session's
correlationId), and every failure is an `UplinkError` carrying the server's own message.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from edge_recorder.config.model import Config
from edge_recorder.support.logs import get_logger
from edge_recorder.uplinks.aas.chunks import ChunkSpan, chunk_plan
from edge_recorder.uplinks.auth import TokenProvider, call_with_token, make_ssl_context
from edge_recorder.uplinks.base import (
    ChunkReader,
    ErrorKind,
    FinalizeResult,
    SessionIdentity,
    UplinkError,
    kind_for_http_status,
    retry_after_s,
)
from edge_recorder.uplinks.limits import (
    JSON_ANSWER_MAX_BYTES,
    body_text,
    parse_json,
    read_capped,
    read_prefix,
)

log = get_logger(__name__)


def service_ssl_context(
    ca_file: Any, client_cert_file: Any = None, client_key_file: Any = None
) -> ssl.SSLContext:
    """TLS for the service: verify against `ca_file` (or the system store), optional mTLS."""
    context = make_ssl_context(ca_file)
    if client_cert_file is not None:
        context.load_cert_chain(str(client_cert_file), str(client_key_file or client_cert_file))
    return context


def error_from_response(
    status: int, text: str, headers: Mapping[str, str] | None = None
) -> UplinkError:
    """Map an HTTP answer to an `UplinkError` with the server's message.

    AAS answers `{"error": "..."}` for most failures but plain text for a missing or malformed
    token; both are kept verbatim (trimmed) so the operator sees the server's own words.
    """
    message = ""
    body = parse_json(text) if text else None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    elif text.strip():
        message = " ".join(text.split())[:300]
    if not message:
        message = f"HTTP {status}"
    return UplinkError(
        kind_for_http_status(status),
        message,
        transport="rest",
        status=status,
        retry_after_s=retry_after_s(headers),
    )


def chunk_metadata(
    session: SessionIdentity, recording_seq: int, chunk_id: int, *, is_last: bool
) -> dict[str, Any]:
    """The `metadata` part of a storeChunk request (deterministic for a given chunk)."""
    meta: dict[str, Any] = {
        "productId": session.product_id,
        "partnerId": session.partner_id,
        "customerId": session.customer_id,
        "correlationId": session.correlation_id,
        "recordingId": recording_seq,
        "chunkId": chunk_id,
        "isLast": is_last,
    }
    if session.ehr_instance_id:
        meta["ehrInstanceId"] = session.ehr_instance_id
    if session.external_user_id:
        meta["externalUserId"] = session.external_user_id
    return meta


class AasRestClient:
    """One aiohttp session to the AAS REST host; implements `base.StoreForwardUploader`."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        chunk_bytes: int = 64 * 1024,
        api_version: str = "2025-07-15",
        sessions_api_version: str = "2",
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        concurrency: int = 1,
        partner_url: str | None = None,
        partner_tokens: TokenProvider | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        # The partner API (`PUT /ambient-sessions`): another host and token scope live.
        self._partner_base = (partner_url or base_url).rstrip("/")
        self._partner_tokens = partner_tokens or tokens
        self.concurrency = concurrency  # chunks in flight during upload_recording
        self._tokens = tokens
        self.chunk_bytes = chunk_bytes
        self._api_version = api_version
        self._sessions_api_version = sessions_api_version
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout_s, sock_connect=connect_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(
        cls, config: Config, tokens: TokenProvider, partner_tokens: TokenProvider | None = None
    ) -> AasRestClient:
        aas, uplink = config.aas, config.uplink
        if not aas.rest_url:
            raise ValueError("aas.rest_url is not set")
        secure = aas.rest_url.startswith("https://")
        if aas.tls and not secure:
            raise ValueError("aas.tls = true needs an https:// aas.rest_url")
        return cls(
            aas.rest_url,
            tokens,
            chunk_bytes=int(uplink.rest_chunk_bytes),
            api_version=aas.rest_api_version,
            sessions_api_version=aas.sessions_api_version,
            ssl_context=service_ssl_context(aas.ca_file, aas.client_cert_file, aas.client_key_file)
            if secure
            else None,
            connect_timeout_s=uplink.connect_timeout_s,
            request_timeout_s=uplink.request_timeout_s,
            partner_url=aas.partner_api_url or None,
            partner_tokens=partner_tokens,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ calls

    async def create_session(self, session: SessionIdentity, data: str | None = None) -> None:
        """`PUT /ambient-sessions`: the session REST chunks and finalize refer to."""
        if not session.external_user_id:
            raise UplinkError(
                ErrorKind.INVALID,
                "externalUserId is required to create an ambient session (aas.external_user_id)",
                transport="rest",
            )
        body: dict[str, Any] = {
            "correlationId": session.correlation_id,
            "productId": session.product_id,
            "customerId": session.customer_id,
            "partnerId": session.partner_id,
            "externalUserId": session.external_user_id,
        }
        if session.ehr_instance_id:
            body["ehrInstanceId"] = session.ehr_instance_id
        if data is not None:
            body["data"] = data
        params = {"api-version": self._sessions_api_version, "customerId": session.customer_id}
        await self._request(
            "PUT",
            "/ambient-sessions",
            params=params,
            json_body=body,
            base=self._partner_base,
            tokens=self._partner_tokens,
        )

    async def store_chunk(
        self,
        session: SessionIdentity,
        recording_seq: int,
        chunk_id: int,
        data: bytes,
        *,
        is_last: bool,
    ) -> None:
        """`PUT /audio/storeChunk`; chunk 1 carries metadata only (`data` must be empty)."""
        if chunk_id == 1 and data:
            raise ValueError("chunk 1 is metadata-only; audio starts at chunk 2")
        metadata = json.dumps(
            chunk_metadata(session, recording_seq, chunk_id, is_last=is_last),
            separators=(",", ":"),
        )

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("metadata", metadata, content_type="application/json")
            if chunk_id != 1:
                fd.add_field(
                    "content",
                    data,
                    filename="chunk.bin",
                    content_type="application/octet-stream",
                )
            return fd

        params = {"api-version": self._api_version, "customerId": session.customer_id}
        await self._request("PUT", "/audio/storeChunk", params=params, form=form)

    async def finalize(
        self,
        session: SessionIdentity,
        recording_seq: int,
        total_chunks: int,
        *,
        skip_session_check: bool = False,
    ) -> FinalizeResult:
        """`POST /audio/finalizeUpload`: declares `totalChunks` (chunk 1 included)."""
        body: dict[str, Any] = {
            "correlationId": session.correlation_id,
            "customerId": session.customer_id,
            "partnerId": session.partner_id,
            "productId": session.product_id,
            "recordingId": recording_seq,
            "totalChunks": total_chunks,
        }
        if session.ehr_instance_id:
            body["ehrInstanceId"] = session.ehr_instance_id
        if session.external_user_id:
            body["externalUserId"] = session.external_user_id
        if skip_session_check:
            body["skipAmbientSessionExistence"] = True
        request_id = await self._request(
            "POST",
            "/audio/finalizeUpload",
            params={"api-version": self._api_version},
            json_body=body,
        )
        log.info("recording finalized", recording_seq=recording_seq, chunk_count=total_chunks)
        return FinalizeResult(total_chunks=total_chunks, request_id=request_id)

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
        """Send every chunk of a closed recording not in `done`, then finalize.

        `read(start, end)` returns the spool's bytes; `on_chunk(chunk_id)` runs after each
        chunk is accepted so the caller can persist progress. Stops at the first error.
        `chunk_bytes` must be the size used by any earlier attempt at this recording (persist
        it with the recording): a different size gives the same ids to different bytes.
        """
        plan = chunk_plan(length, chunk_bytes or self.chunk_bytes)
        todo = [span for span in plan if span.chunk_id not in set(done)]
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def send(span: ChunkSpan) -> None:
            async with gate:
                data = b"" if span.chunk_id == 1 else await read(span.start, span.end)
                if len(data) != span.size:
                    raise ValueError(
                        f"read({span.start}, {span.end}) gave {len(data)} bytes, not {span.size}"
                    )
                await self.store_chunk(
                    session, recording_seq, span.chunk_id, data, is_last=span.is_last
                )
                if on_chunk is not None:
                    await on_chunk(span.chunk_id)

        if self.concurrency <= 1:
            for span in todo:
                await send(span)
        else:  # chunks may arrive in any order; the first failure cancels the rest
            try:
                async with asyncio.TaskGroup() as group:
                    for span in todo:
                        group.create_task(send(span))
            except BaseExceptionGroup as group_error:
                raise _first_error(group_error) from None
        return await self.finalize(session, recording_seq, len(plan))

    async def probe(self) -> str:
        """Is `aas.rest_url` the service, and does it take our token? (`check --probe`)

        An authenticated `POST /audio/finalizeUpload` with an empty body: the service checks
        the token, then refuses the body with its own validation answer (400 and a JSON
        `{"error": ...}`), storing nothing. Any other answer (a 404 from a web server at the
        wrong URL, a login page, a 5xx) is not that proof and raises an `UplinkError` naming
        what came back; a refused token raises as any call's would (after one refresh)."""
        path = "/audio/finalizeUpload"

        async def attempt(token: str) -> str:
            headers = {
                "Authorization": f"Bearer {token}",
                "x-correlation-id": str(uuid.uuid4()),
                "Accept": "application/json",
            }
            try:
                async with self._http().post(
                    self._base + path,
                    params={"api-version": self._api_version},
                    json={},
                    headers=headers,
                    ssl=self._ssl,
                ) as resp:
                    text = body_text(await read_prefix(resp))
                    status = resp.status
                    answer = parse_json(text) if text.strip() else None
                    if status == 400 and isinstance(answer, dict) and answer.get("error"):
                        return f"HTTP {status}: {str(answer['error'])[:80]}"
                    if status in (401, 403):
                        raise error_from_response(status, text, resp.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _network_error(exc, "POST", path) from None
            raise UplinkError(
                ErrorKind.PROTOCOL,
                f"POST {path} answered HTTP {status}, not the service's validation answer "
                "(is aas.rest_url the service's REST base URL?)",
                transport="rest",
                status=status,
            )

        return await call_with_token(self._tokens, attempt)

    # ------------------------------------------------------------------ transport

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        base: str | None = None,
        tokens: TokenProvider | None = None,
    ) -> str:
        """One call with a fresh trace id; one token refresh and retry on 401."""
        url = (base or self._base) + path

        async def attempt(token: str) -> str:
            trace = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {token}",
                "x-correlation-id": trace,
                "Accept": "application/json",
            }
            try:
                async with self._http().request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=form() if form is not None else None,
                    headers=headers,
                    ssl=self._ssl,
                ) as resp:
                    if resp.status >= 300:
                        text = body_text(await read_prefix(resp))
                        raise error_from_response(resp.status, text, resp.headers)
                    raw = await read_capped(
                        resp,
                        JSON_ANSWER_MAX_BYTES,
                        what=f"the answer to {method} {path}",
                        transport="rest",
                    )
                    _check_success_body(resp.status, body_text(raw))
                    return trace
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _network_error(exc, method, path) from None

        return await call_with_token(tokens or self._tokens, attempt)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed parallel upload: an UplinkError when there is one."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
        else:
            leaves.append(item)
    return next((e for e in leaves if isinstance(e, UplinkError)), leaves[0])


def _check_success_body(status: int, text: str) -> None:
    """A 2xx whose body says `{"error": "..."}` is still a failure (the API's own rule)."""
    body = parse_json(text) if text.strip() else None
    if isinstance(body, dict) and body.get("error") not in (None, ""):
        raise UplinkError(ErrorKind.PROTOCOL, str(body["error"]), transport="rest", status=status)


def _network_error(exc: BaseException, method: str, path: str) -> UplinkError:
    """Connection-level failures: retryable (a Pi without RTC may even fail TLS until NTP)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        what = f"TLS failure on {method} {path}: {exc}"
    elif isinstance(exc, TimeoutError):
        what = f"{method} {path} timed out"
    else:
        what = f"{method} {path} failed: {type(exc).__name__}: {exc}"
    return UplinkError(ErrorKind.UNAVAILABLE, what, transport="rest", retryable=True)
