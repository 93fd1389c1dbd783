"""The Corti emulator: one aiohttp server for the API (`/v2`), the auth realms (`/realms`), the
real-time WebSocket (`/audio-bridge/v2/…/streams`) and the inspection API (`/_emulator`)."""

from __future__ import annotations

import socket

from aiohttp import web

from devtools.emulators.corti import api, inspect, reads, streams
from devtools.emulators.corti.context import CTX, CortiContext
from devtools.emulators.corti.settings import CortiEmulatorSettings
from devtools.emulators.corti.store import CortiStore
from devtools.emulators.corti.token_route import token_endpoint
from devtools.emulators.corti.tokens import Issuer


class CortiEmulator:
    def __init__(self, settings: CortiEmulatorSettings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.ctx = CortiContext(settings, CortiStore(settings.data_dir), Issuer(settings))
        self._runner: web.AppRunner | None = None
        self.http_port = 0

    @property
    def http_url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.http_port}"

    @property
    def api_url(self) -> str:
        return self.http_url + "/v2"

    @property
    def auth_url(self) -> str:
        return self.http_url + "/realms"

    @property
    def ws_url(self) -> str:
        return self.ctx.ws_base

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[api.guard], client_max_size=self.settings.max_upload_bytes + 1024 * 1024
        )
        app[CTX] = self.ctx
        api.add_routes(app)
        reads.add_routes(app)
        streams.add_routes(app)
        inspect.add_routes(app)
        app.router.add_post("/realms/{tenant}/protocol/openid-connect/token", token_endpoint)
        return app

    async def start(self) -> CortiEmulator:
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host.strip("[]"), self.settings.http_port))
        sock.listen(128)
        sock.setblocking(False)
        self.http_port = int(sock.getsockname()[1])
        self.ctx.base_url = self.http_url
        self.ctx.issuer.base_url = self.http_url
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
