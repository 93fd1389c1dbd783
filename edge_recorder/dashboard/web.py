"""The HTTP side: aiohttp routes for the pages, the JSON API, the live stream and /metrics.

Every response carries the same strict headers (a CSP without inline code, no framing, no
sniffing, no referrer), set in one `on_response_prepare` hook so error pages and streams get
them too. One middleware decides who is asking (auth.py) before any handler runs: pages send
a stranger to /login, the API answers 401. Commands are the only state-changing calls; they
need the operator role, a custom header (`X-Requested-With: edge-recorder`, which a form on
another site cannot send) and a matching Origin when the browser sends one, and every attempt
goes to the audit log. Request bodies are capped at 16 KiB.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from edge_recorder.dashboard import metrics
from edge_recorder.dashboard.audit import AuditLog, Outcome
from edge_recorder.dashboard.auth import COOKIE, Authenticator, Identity
from edge_recorder.dashboard.commands import ALLOWED, Commands, NotConnected, TooBusy
from edge_recorder.dashboard.config import DashboardConfig
from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.history import History
from edge_recorder.dashboard.live import LiveHub
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY = 16 * 1024
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "edge-recorder"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PUBLIC = ("/login", "/healthz", "/metrics", "/static/")

Json = dict[str, object]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Services:
    """What the handlers use; built and owned by serve.py."""

    cfg: DashboardConfig
    state: FleetState
    broker_status: Callable[[], Json]
    auth: Authenticator
    audit: AuditLog
    commands: Commands
    hub: LiveHub
    history: History | None
    history_executor: Executor
    clock: Callable[[], float]
    extra_metrics: Callable[[], Mapping[str, float]]


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity", Identity)


# ---------------------------------------------------------------- payloads


def fleet_payload(services: Services, identity: Identity | None) -> Json:
    """GET /api/fleet (and the stream's first `snapshot` event)."""
    now = services.clock()
    state = services.state
    return {
        "now": now,
        "broker": services.broker_status(),
        "counts": state.counts(now),
        "devices": state.summaries(now),
        "unattributed": dict(state.unattributed),
        "user": _user(identity, services.auth.mode),
    }


def update_payload(services: Services, changed: Iterable[str]) -> Json:
    """One live `update` event: the changed devices' summaries plus counts and broker."""
    now = services.clock()
    state = services.state
    known = set(state.device_ids())
    return {
        "now": now,
        "broker": services.broker_status(),
        "counts": state.counts(now),
        "devices": [state.summary(device, now) for device in changed if device in known],
        "removed": [],
    }


def _user(identity: Identity | None, mode: str) -> Json:
    """Who the page is for; `mode` tells it whether there is a session to sign out of."""
    if identity is None:
        return {"name": None, "role": None, "mode": mode}
    return {"name": identity.name, "role": identity.role, "mode": mode}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _identity(request: web.Request) -> Identity | None:
    return request.get(IDENTITY)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


# ---------------------------------------------------------------- middleware and headers


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    path = request.path
    if path.startswith("/static/vendor/"):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    elif path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
    elif "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = _services(request)
    auth = services.auth
    identity = auth.identify(request.remote, request.headers, request.cookies.get(COOKIE))
    request[IDENTITY] = identity
    path = request.path
    if identity is not None or any(path == p or path.startswith(p) for p in PUBLIC if p):
        return await handler(request)
    if path.startswith("/api/"):
        return _error(401, "login required")
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")


# ---------------------------------------------------------------- pages and login


def _page(name: str) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / name)

    return handler


async def device_page(request: web.Request) -> web.StreamResponse:
    if not DEVICE_ID.match(request.match_info["device_id"]):
        raise web.HTTPNotFound
    return web.FileResponse(STATIC_DIR / "device.html")


def safe_next(target: str | None) -> str:
    """Only a same-site absolute path (no scheme, no `//host`, no backslashes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


async def login(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    auth = services.auth
    form = await request.post()
    name = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")) or None)
    if not auth.login_required:
        raise web.HTTPSeeOther(target)
    if not auth.has_login_form:
        return _error(404, "no login form: sign in through the proxy")
    if auth.locked_out(name):
        log.warning("login locked out", user=name, remote=request.remote)
        return _error(429, "too many failed logins; wait a minute")
    loop = asyncio.get_running_loop()
    identity = await loop.run_in_executor(None, auth.check_password, name, password)
    if identity is None:
        auth.note_failure(name)
        log.warning("login failed", user=name, remote=request.remote)
        again = "" if target == "/" else f"&next={quote(target, safe='/')}"
        raise web.HTTPSeeOther(f"/login?failed=1{again}")
    token = auth.start_session(identity)
    log.info("login", user=identity.name, role=identity.role, remote=request.remote)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(auth.session_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=services.cfg.http.tls,
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    _services(request).auth.end_session(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# ---------------------------------------------------------------- the API


async def api_fleet(request: web.Request) -> web.StreamResponse:
    return web.json_response(fleet_payload(_services(request), _identity(request)))


async def api_device(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    detail = services.state.detail(request.match_info["device_id"], services.clock())
    if detail is None:
        return _error(404, "unknown device")
    return web.json_response({**detail, "user": _user(_identity(request), services.auth.mode)})


async def api_history(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    device_id = request.match_info["device_id"]
    if not DEVICE_ID.match(device_id):
        return _error(404, "unknown device")
    try:
        hours = float(request.query.get("hours", "24"))
    except ValueError:
        return _error(400, "hours must be a number")
    if not 1 <= hours <= 168:
        return _error(400, "hours must be between 1 and 168")
    until = services.clock()
    since = until - hours * 3600
    series: dict[str, list[float | None]] = {"t": []}
    if services.history is not None:
        loop = asyncio.get_running_loop()
        series = await loop.run_in_executor(
            services.history_executor, services.history.series, device_id, since, until
        )
    return web.json_response(
        {"device_id": device_id, "since": since, "until": until, "series": series}
    )


async def api_stream(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    return await services.hub.stream(request, fleet_payload(services, _identity(request)))


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


async def api_command(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    identity = _identity(request)
    device_id, name = request.match_info["device_id"], request.match_info["name"]
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        return _error(403, f"missing {CSRF_HEADER}: {CSRF_VALUE}")
    if not _same_origin(request):
        return _error(403, "cross-origin request refused")
    body = await request.read()
    if body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            return _error(400, "body must be a JSON object")
        if not isinstance(parsed, dict):
            return _error(400, "body must be a JSON object")

    def audit(outcome: Outcome, request_id: str | None = None) -> None:
        services.audit.record(
            user=identity.name if identity else "?",
            role=identity.role if identity else "?",
            remote=request.remote or "?",
            device_id=device_id if DEVICE_ID.match(device_id) else "?",
            command=name if name in ALLOWED else "?",
            request_id=request_id,
            outcome=outcome,
        )

    if identity is None or not identity.is_operator:
        audit("forbidden")
        return _error(403, "operators only")
    if name not in ALLOWED:
        audit("error")
        return _error(404, "unknown command")
    if services.state.detail(device_id, services.clock()) is None:
        audit("error")
        return _error(404, "unknown device")
    try:
        result = await services.commands.send(device_id, name, identity.name)
    except (NotConnected, TooBusy) as exc:
        audit("error")
        why = "broker not connected" if isinstance(exc, NotConnected) else "too many commands"
        return _error(503, why)
    request_id = str(result["request_id"])
    if result["error"] == "timeout":
        audit("timeout", request_id)
        return web.json_response(result, status=504)
    audit("ok" if result["ok"] else "refused", request_id)
    return web.json_response(result)


async def get_metrics(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    auth = services.auth
    allowed = (
        not auth.login_required
        or _identity(request) is not None
        or auth.metrics_allowed(request.headers.get("Authorization"))
    )
    if not allowed:
        return web.json_response(
            {"error": "login or bearer token required"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="edge-recorder-fleet"'},
        )
    connected = services.broker_status().get("connected") is True
    # The fleet is read on the loop (it owns the state); the text is built in a thread, since
    # for 1,000 devices it takes ~0.2 s that would otherwise stall live updates.
    snapshot = metrics.metrics_snapshot(services.state, services.clock())
    body = await asyncio.to_thread(
        metrics.render_snapshot, snapshot, connected, services.extra_metrics()
    )
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthz(request: web.Request) -> web.StreamResponse:
    if _services(request).broker_status().get("connected") is True:
        return web.Response(text="ok")
    return web.Response(text="broker disconnected", status=503)


# ---------------------------------------------------------------- the app


def build_app(services: Services) -> web.Application:
    """The aiohttp application (no listener: serve.py runs it)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_authenticate])
    app[SERVICES] = services
    app.on_response_prepare.append(_headers)
    app.add_routes(
        [
            web.get("/", _page("fleet.html")),
            web.get("/devices/{device_id}", device_page),
            web.get("/login", _page("login.html")),
            web.post("/login", login),
            web.post("/logout", logout),
            web.get("/api/fleet", api_fleet),
            web.get("/api/stream", api_stream),
            web.get("/api/devices/{device_id}", api_device),
            web.get("/api/devices/{device_id}/history", api_history),
            web.post("/api/devices/{device_id}/commands/{name}", api_command),
            web.get("/metrics", get_metrics),
            web.get("/healthz", healthz),
            web.static("/static", STATIC_DIR, follow_symlinks=False),
        ]
    )
    return app
