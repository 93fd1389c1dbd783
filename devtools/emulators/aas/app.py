"""The emulator assembled: gRPC (grpc.aio) and HTTP + WebSocket (aiohttp) in one asyncio loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from devtools.emulators.aas import auth_http, inspect, rest, ws
from devtools.emulators.aas.auth import Issuer
from devtools.emulators.aas.core import Context
from devtools.emulators.aas.grpc_service import start_grpc
from devtools.emulators.aas.settings import EmulatorSettings
from devtools.emulators.aas.store import Store
from devtools.emulators.aas.uploads import Uploads
from devtools.emulators.common.faults import Faults
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")  # a link to protos/openapi.yaml
_UNFAULTED = ("/_emulator", "/.well-known", "/openapi.yaml", "/ws")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injected latency and failures for REST and the token endpoint (WS/gRPC do their own)."""
    if request.path.startswith(_UNFAULTED):
        return await handler(request)
    faults = request.app[rest.CTX_KEY].faults
    target = "token" if request.path == "/oauth2/token" else "rest"
    delay = faults.take_latency_s(target, request.path)
    if delay:
        await asyncio.sleep(delay)
    fault = faults.take_failure(target, request.path)
    if fault is not None:
        return rest.error(fault.status, f"injected fault: {fault.status}")
    return await handler(request)


async def openapi(request: web.Request) -> web.StreamResponse:
    if not OPENAPI_PATH.exists():
        return web.json_response({"error": "openapi.yaml not installed"}, status=404)
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/yaml"})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@web.middleware
async def empty_bad_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Live fidelity: the live service answers a refused request with an empty-bodied 400."""
    response = await handler(request)
    if response.status == 400 and not request.path.startswith("/_emulator"):
        return web.Response(status=400)
    return response


class Emulator:
    """Start with `await start()`, stop with `await stop()`; ports are known after start."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings.data_dir)
        self.ctx = Context(settings, store, Uploads(store), Issuer(settings), Faults())
        self.grpc_port = 0
        self.http_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self._url_host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self._url_host}:{self.grpc_port}"

    @property
    def token_url(self) -> str:
        return f"{self.http_url}/oauth2/token"

    @property
    def _url_host(self) -> str:
        host = self.settings.host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def info(self) -> dict[str, Any]:
        return {
            "grpcTarget": self.grpc_target,
            "httpUrl": self.http_url,
            "wsUrl": self.ws_url,
            "tokenUrl": self.token_url,
            "issuer": self.ctx.issuer.issuer_url,
            "clientId": self.settings.client_id,
            "audience": self.settings.audience,
            "dataDir": str(self.settings.data_dir),
        }

    def build_app(self) -> web.Application:
        middlewares = [fault_middleware]
        if self.settings.fidelity == "live":
            middlewares.append(empty_bad_requests)
        app = web.Application(middlewares=middlewares, client_max_size=8 * 1024**2)
        app[rest.CTX_KEY] = self.ctx
        app[inspect.INFO_KEY] = {}
        rest.add_routes(app)
        auth_http.add_routes(app)
        ws.add_routes(app)
        inspect.add_routes(app)
        app.router.add_get("/openapi.yaml", openapi)
        return app

    async def start(self) -> None:
        sock = _bind(self.settings.host, self.settings.http_port)
        self.http_port = sock.getsockname()[1]
        self.ctx.issuer.issuer_url = self.http_url
        app = self.build_app()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        try:
            self._grpc, self.grpc_port = await start_grpc(
                self.ctx, self.settings.host, self.settings.grpc_port
            )
        except BaseException:
            await self._runner.cleanup()
            raise
        app[inspect.INFO_KEY].update(self.info())
        log.info("emulator started", grpc_port=self.grpc_port, http_port=self.http_port)

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
            self._grpc = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("emulator stopped")
