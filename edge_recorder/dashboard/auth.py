"""Who is asking: open mode on loopback, a users file with argon2 hashes, or a trusted proxy.

Three modes, chosen by the config alone:
- open: the dashboard listens on loopback only and no login is configured; whoever can reach
  it is already on this machine, so everyone is operator "local".
- users: `name:role:$argon2id$...` lines; a login creates a random 32-byte session token kept
  in memory (a restart logs everyone out, which is fine) with an expiry.
- proxy: a reverse proxy that did the login passes the user (and role) in headers, believed
  only when the TCP peer is one of `trusted_proxies`; anyone else sending the header is
  ignored, so the header cannot be forged from outside.
Passwords are checked with argon2 (slow on purpose; run in a worker thread by the caller),
and a name that does not exist costs the same as a wrong password. Five failures for one
name within a minute lock that name for the rest of the minute (HTTP 429).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge_recorder.dashboard.config import DashboardConfig, Role, listens_on_loopback
from edge_recorder.support.credentials import SecretUnavailable, read_secret
from edge_recorder.support.logs import get_logger

log = get_logger(__name__)

Mode = Literal["open", "users", "proxy"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
COOKIE = "er_session"
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0
MAX_SESSIONS = 10000
MAX_TRACKED_NAMES = 10000


class UsersFileError(Exception):
    """The users file cannot be read or has a malformed line (the message says which)."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class Session:
    identity: Identity
    expires: float


@dataclass(frozen=True)
class UserEntry:
    name: str
    role: Role
    hash: str


def parse_users(text: str) -> dict[str, UserEntry]:
    """Users from the file's text; blank lines and `#` comments are skipped."""
    users: dict[str, UserEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not USER_NAME.match(parts[0]) or parts[1] not in ROLES:
            raise UsersFileError(f"line {number}: expected name:viewer|operator:$argon2id$...")
        if not parts[2].startswith("$argon2"):
            raise UsersFileError(f"line {number}: the hash is not an argon2 hash")
        role: Role = "operator" if parts[1] == "operator" else "viewer"
        users[parts[0]] = UserEntry(parts[0], role, parts[2])
    return users


def write_user(path: Path, name: str, role: Role, password: str) -> None:
    """Add or replace `name` in the users file (created 0600), atomically."""
    if not USER_NAME.match(name):
        raise UsersFileError("user names are 1-64 of A-Z a-z 0-9 _ . @ -")
    if not password:
        raise UsersFileError("empty password")
    lines: list[str] = []
    if path.exists():
        text = path.read_text(encoding="utf-8")
        parse_users(text)  # refuse to rewrite a file we do not understand
        lines = [line for line in text.splitlines() if line.split(":", 1)[0] != name]
    lines.append(f"{name}:{role}:{PasswordHasher().hash(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    temporary.replace(path)


class Authenticator:
    """Identifies requests and keeps login sessions (used from the asyncio loop)."""

    def __init__(self, cfg: DashboardConfig, clock: Callable[[], float] = time.time) -> None:
        auth = cfg.auth
        self.settings = auth
        self.clock = clock
        self.session_s = auth.session_hours * 3600
        if auth.proxy_user_header:
            self.mode: Mode = "proxy"
        elif auth.users_file is not None:
            self.mode = "users"
        else:
            self.mode = "open"
        if self.mode == "open" and not listens_on_loopback(cfg):
            raise ValueError("open mode is only allowed on loopback")  # serve refuses earlier
        self._proxies = [
            ipaddress.ip_network(entry, strict=False) for entry in auth.trusted_proxies
        ]
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._users: dict[str, UserEntry] = {}
        self._users_mtime: float | None = None
        self._users_lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._metrics_token: str | None = None
        if auth.metrics_token_file is not None or self.mode != "open":
            with contextlib.suppress(SecretUnavailable):
                self._metrics_token = read_secret(auth.metrics_token_file, "metrics-token")
        if auth.users_file is not None:
            self.users()  # a broken file is an error at start, not at the first login

    @property
    def login_required(self) -> bool:
        return self.mode != "open"

    @property
    def has_login_form(self) -> bool:
        return self.settings.users_file is not None

    # ---------------------------------------------------------------- users file

    def users(self) -> dict[str, UserEntry]:
        """The users file, re-read when its mtime changed (so `fleet passwd` needs no restart)."""
        path = self.settings.users_file
        if path is None:
            return {}
        with self._users_lock:
            try:
                mtime = path.stat().st_mtime
                if mtime != self._users_mtime:
                    self._users = parse_users(path.read_text(encoding="utf-8"))
                    self._users_mtime = mtime
            except OSError as exc:
                raise UsersFileError(f"{path}: {exc.strerror}") from None
            return self._users

    # ---------------------------------------------------------------- identification

    def trusted_proxy(self, remote: str | None) -> bool:
        if not remote:
            return False
        try:
            address = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def identify(
        self, remote: str | None, headers: Mapping[str, str], cookie: str | None
    ) -> Identity | None:
        """The request's identity, or None when it must log in."""
        if self.mode == "open":
            return Identity("local", "operator")
        header = self.settings.proxy_user_header
        if header and self.trusted_proxy(remote):
            name = headers.get(header, "").strip()
            if name and USER_NAME.match(name):
                role_header = self.settings.proxy_role_header
                role_text = headers.get(role_header, "").strip() if role_header else ""
                return Identity(name, "operator" if role_text == "operator" else "viewer")
        return self.session(cookie)

    def session(self, token: str | None) -> Identity | None:
        if not token:
            return None
        found = self._sessions.get(token)
        if found is None:
            return None
        if found.expires <= self.clock():
            self._sessions.pop(token, None)
            return None
        return found.identity

    def metrics_allowed(self, authorization: str | None) -> bool:
        """`Authorization: Bearer <token>` against the metrics token (constant time)."""
        if self._metrics_token is None or not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._metrics_token.encode())

    # ---------------------------------------------------------------- login

    def locked_out(self, name: str) -> bool:
        """Five failures for this name in the last minute: refuse without checking."""
        failures = self._failures.get(name)
        if not failures:
            return False
        horizon = self.clock() - FAILURE_WINDOW_S
        while failures and failures[0] <= horizon:
            failures.popleft()
        return len(failures) >= MAX_FAILURES

    def check_password(self, name: str, password: str) -> Identity | None:
        """argon2 verification (blocking: call in a worker thread); None when wrong."""
        entry = self.users().get(name)
        try:
            self._hasher.verify(entry.hash if entry else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return Identity(entry.name, entry.role) if entry else None

    def note_failure(self, name: str) -> None:
        if name not in self._failures and len(self._failures) >= MAX_TRACKED_NAMES:
            self._failures.clear()  # a spray of names: forget rather than grow
        self._failures.setdefault(name, deque(maxlen=MAX_FAILURES)).append(self.clock())

    def start_session(self, identity: Identity) -> str:
        """A new session token for a successful login."""
        now = self.clock()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires > now}
            if len(self._sessions) >= MAX_SESSIONS:  # still full: drop the oldest
                oldest = min(self._sessions, key=lambda t: self._sessions[t].expires)
                del self._sessions[oldest]
        self._failures.pop(identity.name, None)
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(identity, now + self.session_s)
        return token

    def end_session(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
