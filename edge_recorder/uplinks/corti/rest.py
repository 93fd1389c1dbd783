"""The Corti REST calls the device makes, one method per endpoint (no workflow logic here).

Every call carries `Authorization: Bearer …` and `Tenant-Name` [doc]; a 401 refreshes the token
once and retries (`auth.call_with_token`); every failure becomes one `UplinkError`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from edge_recorder.uplinks.auth import TokenProvider, call_with_token
from edge_recorder.uplinks.corti.errors import error_for_response, network_error, protocol_error
from edge_recorder.uplinks.limits import (
    CORTI_ANSWER_MAX_BYTES,
    NotJson,
    body_text,
    parse_json,
    read_capped,
    read_prefix,
)

UPLOAD_PIECE = 1024 * 1024  # bytes read from the spool per write while uploading
_ID = re.compile(r"/[0-9A-Za-z][0-9A-Za-z-]{15,}")  # a path segment that is an id


@dataclass(frozen=True)
class Transcript:
    id: str
    status: str  # completed | processing | failed
    text: str  # joined segment texts ("" until completed); PHI: never logged


class CortiRest:
    """One aiohttp session to the tenant's Corti API."""

    def __init__(
        self,
        api_base: str,
        tenant: str,
        tokens: TokenProvider,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        upload_timeout_s: float = 1800.0,
    ) -> None:
        self.base = api_base.rstrip("/")
        self.tenant = tenant
        self.tokens = tokens
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout_s, sock_connect=connect_timeout_s
        )
        self._upload_timeout = aiohttp.ClientTimeout(
            total=upload_timeout_s, sock_connect=connect_timeout_s, sock_read=request_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ endpoints
    async def create_interaction(self, body: dict[str, Any]) -> str:
        """`POST /interactions/` → the interaction id (`interactionId`, older docs `id`)."""
        answer = await self.request("POST", "/interactions/", json_body=body)
        found = _field(answer, "interactionId", "id")
        if found is None:
            raise protocol_error("POST /interactions/ answered without interactionId")
        return found

    async def upload(
        self, interaction_id: str, size: int, body: Callable[[], AsyncIterator[bytes]]
    ) -> str:
        """`POST /interactions/{id}/recordings/` with the raw file bytes → recordingId."""
        answer = await self.request(
            "POST",
            f"/interactions/{interaction_id}/recordings/",
            body=body,
            size=size,
        )
        found = _field(answer, "recordingId", "id")
        if found is None:
            raise protocol_error("recording upload answered without recordingId")
        return found

    async def list_recordings(self, interaction_id: str) -> list[str]:
        """`GET /interactions/{id}/recordings/` → `{recordings: [id, …]}` [doc: official SDK]."""
        answer = await self.request("GET", f"/interactions/{interaction_id}/recordings/")
        items = answer.get("recordings") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise protocol_error("recordings list without a 'recordings' array")
        ids = []
        for item in items:
            if isinstance(item, str):
                ids.append(item)
            elif isinstance(item, dict) and _field(item, "recordingId", "id"):
                ids.append(str(_field(item, "recordingId", "id")))
        return ids

    async def create_transcript(self, interaction_id: str, body: dict[str, Any]) -> Transcript:
        """`POST /interactions/{id}/transcripts/`: 200 with the transcript, or 202 (poll)."""
        answer = await self.request(
            "POST", f"/interactions/{interaction_id}/transcripts/", json_body=body
        )
        return _transcript(answer, default_status="completed")

    async def transcript_status(self, interaction_id: str, transcript_id: str) -> str:
        answer = await self.request(
            "GET", f"/interactions/{interaction_id}/transcripts/{transcript_id}/status"
        )
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, str):
            raise protocol_error("transcript status answer without 'status'")
        return status

    async def get_transcript(self, interaction_id: str, transcript_id: str) -> Transcript:
        answer = await self.request(
            "GET", f"/interactions/{interaction_id}/transcripts/{transcript_id}"
        )
        return _transcript(answer, default_status="completed")

    async def create_document(self, interaction_id: str, body: dict[str, Any]) -> str:
        answer = await self.request(
            "POST", f"/interactions/{interaction_id}/documents/", json_body=body
        )
        found = _field(answer, "id", "documentId")
        if found is None:
            raise protocol_error("document answer without id")
        return found

    async def templates(self) -> list[dict[str, Any]]:
        """`GET /templates/` (the cheap probe): the tenant's document templates."""
        answer = await self.request("GET", "/templates/")
        items = answer.get("data", answer.get("templates")) if isinstance(answer, dict) else answer
        if not isinstance(items, list):
            raise protocol_error("templates answer is not a list")
        return [t for t in items if isinstance(t, dict)]

    # ------------------------------------------------------------------ transport
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        body: Callable[[], AsyncIterator[bytes]] | None = None,
        size: int = 0,
    ) -> Any:
        """One call; JSON answer (or {} when empty). `body()` streams an upload of `size`."""
        url = self.base + path
        what = f"{method} {_ID.sub('/{id}', path.split('?')[0])}"  # ids out of messages

        async def attempt(token: str) -> Any:
            headers = {
                "Authorization": f"Bearer {token}",
                "Tenant-Name": self.tenant,
                "Accept": "application/json",
            }
            data: Any = None
            timeout = self._timeout
            if body is not None:
                headers["Content-Type"] = "application/octet-stream"
                headers["Content-Length"] = str(size)
                data = body()
                timeout = self._upload_timeout
            try:
                async with self._http().request(
                    method, url, json=json_body, data=data, headers=headers, ssl=self._ssl,
                    timeout=timeout,
                ) as resp:  # fmt: skip
                    if resp.status >= 300:
                        text = body_text(await read_prefix(resp))
                        raise error_for_response(resp.status, text, resp.headers, what=what)
                    raw = await read_capped(
                        resp, CORTI_ANSWER_MAX_BYTES, what=f"the answer to {what}", transport="rest"
                    )
                    if not raw.strip():
                        return {}
                    answer = parse_json(raw)
                    if isinstance(answer, NotJson):
                        raise protocol_error(f"{what} answered a body that is {answer.reason}")
                    if resp.status == 202 and isinstance(answer, dict):
                        answer.setdefault("status", "processing")
                    return answer
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise network_error(exc, what) from None

        return await call_with_token(self.tokens, attempt)


def _field(answer: Any, *names: str) -> str | None:
    if not isinstance(answer, dict):
        return None
    for name in names:
        value = answer.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _transcript(answer: Any, default_status: str) -> Transcript:
    tid = _field(answer, "id", "transcriptId")
    if tid is None:
        raise protocol_error("transcript answer without id")
    status = answer.get("status") or default_status
    segments = answer.get("transcripts") or []
    text = " ".join(
        str(s.get("text", "")).strip() for s in segments if isinstance(s, dict) and s.get("text")
    )
    return Transcript(tid, str(status), text)
