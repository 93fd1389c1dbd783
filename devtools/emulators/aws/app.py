"""The AWS scribe streaming emulator: HTTP/2 + TLS streaming endpoint and a plain HTTP/1.1
inspection API (aiohttp) on a side port.

GET    /_emulator/info                                     ports, URLs, CA file
GET    /_emulator/sessions                                 every session with its streams
GET    /_emulator/sessions/{sid}                           one session (404 when unknown)
GET    /_emulator/sessions/{sid}/raw                       the session's audio (streams in order)
GET    /_emulator/sessions/{sid}/streams/{n}/raw           one stream's audio, as received
GET/POST/DELETE /_emulator/faults                          list / arm / clear faults
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from devtools.emulators.aws.faults import AwsFaults
from devtools.emulators.aws.handler import StreamHandler
from devtools.emulators.aws.server import H2Protocol, Registry
from devtools.emulators.aws.sessions import SessionStore
from devtools.emulators.aws.tls import ensure_certificates, server_context
from edge_recorder.uplinks.aws.signing import Credentials

EMU_KEY = web.AppKey("aws_emulator", object)


@dataclass
class AwsEmulatorSettings:
    data_dir: Path
    access_key_id: str
    secret_access_key: str
    host: str = "127.0.0.1"
    http_port: int = 0
    http2_port: int = 0
    segment_s: float = 2.0  # one transcript segment per this much session audio
    max_audio_s: float | None = None  # override the service's documented limit (tests)


class AwsEmulator:
    def __init__(self, settings: AwsEmulatorSettings) -> None:
        self.settings = settings
        self.store = SessionStore(settings.data_dir / "aws" / "sessions")
        self.faults = AwsFaults()
        self.registry = Registry()
        self.creds = Credentials(settings.access_key_id, settings.secret_access_key)
        self.ca_file, self._cert, self._key = ensure_certificates(settings.data_dir / "aws" / "tls")
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self.http2_port = 0
        self.http_port = 0

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.settings.host}:{self.http2_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.http_port}"

    def _handler(self, supersede: Any) -> StreamHandler:
        return StreamHandler(
            self.store,
            self.faults,
            self.creds,
            self.settings.segment_s,
            supersede,
            max_audio_s=self.settings.max_audio_s,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: H2Protocol(self._handler, self.registry),
            self.settings.host,
            self.settings.http2_port,
            ssl=server_context(self._cert, self._key),
        )
        self.http2_port = self._server.sockets[0].getsockname()[1]
        app = web.Application()
        app[EMU_KEY] = self
        app.router.add_get("/_emulator/info", _info)
        app.router.add_get("/_emulator/sessions", _sessions)
        app.router.add_get("/_emulator/sessions/{sid}", _session)
        app.router.add_get("/_emulator/sessions/{sid}/raw", _session_raw)
        app.router.add_get("/_emulator/sessions/{sid}/streams/{n}/raw", _stream_raw)
        app.router.add_get("/_emulator/faults", _faults)
        app.router.add_post("/_emulator/faults", _add_fault)
        app.router.add_delete("/_emulator/faults", _clear_faults)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.http_port)
        await site.start()
        assert site._server is not None
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for proto in list(self.registry.by_session.values()):
                proto.abort()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def info(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "http_url": self.http_url,
            "http2_port": self.http2_port,
            "http_port": self.http_port,
            "ca_file": str(self.ca_file),
            "access_key_id": self.creds.access_key_id,
        }


def _emu(request: web.Request) -> AwsEmulator:
    emu = request.app[EMU_KEY]
    assert isinstance(emu, AwsEmulator)
    return emu


async def _info(request: web.Request) -> web.Response:
    return web.json_response(_emu(request).info())


async def _sessions(request: web.Request) -> web.Response:
    store = _emu(request).store
    return web.json_response({"sessions": [store.describe(s) for s in store.sessions.values()]})


async def _session(request: web.Request) -> web.Response:
    store = _emu(request).store
    found = store.sessions.get(request.match_info["sid"])
    if found is None:
        return web.json_response({"error": "unknown session"}, status=404)
    return web.json_response(store.describe(found))


async def _session_raw(request: web.Request) -> web.Response:
    store = _emu(request).store
    found = store.sessions.get(request.match_info["sid"])
    if found is None:
        return web.json_response({"error": "unknown session"}, status=404)
    data = b"".join(store.raw_path(found.session_id, s.index).read_bytes() for s in found.streams)
    return web.Response(body=data, content_type="application/octet-stream")


async def _stream_raw(request: web.Request) -> web.StreamResponse:
    store = _emu(request).store
    found = store.sessions.get(request.match_info["sid"])
    n = request.match_info["n"]
    if found is None or not n.isdigit() or int(n) >= len(found.streams):
        return web.json_response({"error": "unknown stream"}, status=404)
    return web.FileResponse(store.raw_path(found.session_id, int(n)))


async def _faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": _emu(request).faults.describe()})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        spec = await request.json()
        if not isinstance(spec, dict):
            raise ValueError("a JSON object is expected")
        fault = _emu(request).faults.add(spec)
    except (ValueError, json.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"id": fault.id}, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    _emu(request).faults.clear()
    return web.json_response({"faults": []})
