"""The Dice STREAM emulator: sign-in, the STREAM WebSocket and `/_emulator/` inspection.

POST /v1/auth/token       password grant (and refresh_token grant), form-encoded [path inferred]
POST /v1/auth/refresh     refresh_token grant only [inferred]
GET  /v1/scribe/server    STREAM WebSocket [doc path]; /v1/scribe/user is the same here
GET  /_emulator/info | /_emulator/sessions | /_emulator/sessions/{n} | .../{n}/raw
GET|POST|DELETE /_emulator/faults   (see faults.py; plus kind=revoke_tokens|expire_tokens)
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web

from devtools.emulators.common.bodies import json_object
from devtools.emulators.dice.faults import Faults
from devtools.emulators.dice.session import StreamSession
from devtools.emulators.dice.settings import DiceEmulatorSettings
from devtools.emulators.dice.store import StreamStore
from devtools.emulators.dice.tokens import TokenError, Tokens
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
STREAM_PATH = "/v1/scribe/server"
TOKEN_PATH = "/v1/auth/token"  # noqa: S105 - a URL path
REFRESH_PATH = "/v1/auth/refresh"


def _missing(*fields: str) -> web.Response:
    """FastAPI-style validation error [doc: 422 {detail:[{loc, msg, type}]}]."""
    detail = [
        {"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}
        for name in fields
    ]
    return web.json_response({"detail": detail}, status=422)


class DiceEmulator:
    """`await start()`, `await stop()`; the port is known after start."""

    def __init__(self, settings: DiceEmulatorSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = StreamStore(settings.data_dir)
        self.tokens = Tokens(settings.data_dir / "tokens.json", settings.token_lifetime_s)
        self.faults = Faults()
        self.http_port = 0
        self._runner: web.AppRunner | None = None
        self._sessions: set[asyncio.Task[Any]] = set()

    @property
    def http_url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.http_url.removeprefix("http") + STREAM_PATH

    @property
    def token_url(self) -> str:
        return self.http_url + TOKEN_PATH

    @property
    def refresh_url(self) -> str:
        return self.http_url + REFRESH_PATH

    def info(self) -> dict[str, Any]:
        return {
            "httpUrl": self.http_url,
            "wsUrl": self.ws_url,
            "tokenUrl": self.token_url,
            "refreshUrl": self.refresh_url,
            "username": self.settings.username,
            "dataDir": str(self.settings.data_dir),
            "streamLimitS": self.settings.stream_limit_s,
            "countdownS": self.settings.countdown_s,
            "signIns": self.tokens.sign_ins,
            "refreshes": self.tokens.refreshes,
        }

    # ------------------------------------------------------------------ auth

    async def grant(self, request: web.Request) -> web.Response:
        fault = self.faults.take("fail", "token")
        if fault is not None:
            return web.json_response(
                {"detail": f"injected fault: {fault.status}"}, status=fault.status
            )
        form = await request.post()
        grant_type = form.get("grant_type")
        only_refresh = request.path == REFRESH_PATH
        try:
            if grant_type == "refresh_token":
                token = form.get("refresh_token")
                if not isinstance(token, str) or not token:
                    return _missing("refresh_token")
                return web.json_response(self.tokens.refresh(token))
            if grant_type == "password" and not only_refresh:
                username, password = form.get("username"), form.get("password")
                absent = [k for k, v in (("username", username), ("password", password)) if not v]
                if absent or not isinstance(username, str) or not isinstance(password, str):
                    return _missing(*(absent or ["username"]))
                return web.json_response(
                    self.tokens.sign_in(
                        username, password, self.settings.username, self.settings.password
                    )
                )
        except TokenError as exc:
            return web.json_response(
                {"detail": exc.detail}, status=exc.status, headers={"WWW-Authenticate": "Bearer"}
            )
        if not grant_type:
            return _missing("grant_type")
        return web.json_response(
            {"detail": f"unsupported grant_type {str(grant_type)[:40]!r}"}, status=400
        )

    # ------------------------------------------------------------------ stream

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":  # e.g. the device's probe
            return web.json_response({"detail": "WebSocket upgrade required"}, status=426)
        fault = self.faults.take("fail", "ws")
        if fault is not None:
            return web.json_response(
                {"detail": f"injected fault: {fault.status}"}, status=fault.status
            )
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return web.json_response({"detail": "Not authenticated"}, status=401)
        why = self.tokens.check(token.strip())
        if why is not None:
            return web.json_response({"detail": why}, status=401)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=8 * 1024 * 1024)
        await ws.prepare(request)
        record = self.store.open_stream()
        session = StreamSession(
            request,
            ws,
            self.settings,
            self.store,
            record,
            drop=self.faults.take("drop_stream"),
            error=self.faults.take("error_msg"),
        )
        log.info("dice emulator stream opened", stream=record.index)
        await session.run()
        return ws

    # ------------------------------------------------------------------ inspection

    async def get_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info())

    async def sessions(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": [self.store.describe(r) for r in self.store.streams]})

    def _record(self, request: web.Request) -> Any:
        try:
            return self.store.get(int(request.match_info["index"]))
        except ValueError:
            return None

    async def session(self, request: web.Request) -> web.Response:
        record = self._record(request)
        if record is None:
            return web.json_response({"error": "unknown session"}, status=404)
        return web.json_response(self.store.describe(record))

    async def raw(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request)
        if record is None:
            return web.json_response({"error": "unknown session"}, status=404)
        return web.FileResponse(self.store.audio_path(record.index))

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.faults.describe()})

    async def add_fault(self, request: web.Request) -> web.Response:
        spec = await json_object(request)
        if spec is None:
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        if spec.get("kind") == "revoke_tokens":
            return web.json_response({"revoked": self.tokens.revoke_all()})
        if spec.get("kind") == "expire_tokens":
            self.tokens.expire_access()
            return web.json_response({"expired": True})
        try:
            fault = self.faults.add(spec)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"id": fault.id, "fault": self.faults.describe()[-1]}, status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.Response(status=204)

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(TOKEN_PATH, self.grant)
        app.router.add_post(REFRESH_PATH, self.grant)
        app.router.add_get(STREAM_PATH, self.stream)
        app.router.add_get("/v1/scribe/user", self.stream)
        app.router.add_get("/_emulator/info", self.get_info)
        app.router.add_get("/_emulator/sessions", self.sessions)
        app.router.add_get("/_emulator/sessions/{index}", self.session)
        app.router.add_get("/_emulator/sessions/{index}/raw", self.raw)
        app.router.add_get("/_emulator/faults", self.list_faults)
        app.router.add_post("/_emulator/faults", self.add_fault)
        app.router.add_delete("/_emulator/faults", self.clear_faults)
        return app

    async def start(self) -> None:
        host = self.settings.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.settings.http_port))
        sock.listen(128)
        sock.setblocking(False)
        self.http_port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("dice emulator started", http_port=self.http_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()
        log.info("dice emulator stopped")
