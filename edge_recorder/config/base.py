"""Pieces every config section shares, kept apart so per-service sections can live beside
their sections (`edge_recorder/config/services/<service>.py`) without importing the model.

The endpoint rule lives here: every address the device connects to (a URL, a gRPC target, a
broker host) is a field annotated with `Endpoint`, so one rule normalises and judges all of
them. Plain text (http://, ws://, or a section's `tls = false`) may only reach loopback: a
client secret or bearer token must never cross the network unencrypted. A check on the raw
string (`url.startswith("https://")`) is what let `HTTP://host` through before; here the URL
is parsed first (scheme and host lower-cased, the host IDNA-encoded, whitespace, control
characters and user:password@ refused), then judged by its parsed scheme and host.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Self, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, core_schema

SampleFormat = Literal["S16_LE", "S24_LE", "S32_LE"]
Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
GpioPin = Annotated[int, Field(ge=0, le=53)]

PLAINTEXT_SCHEMES = frozenset({"http", "ws"})
_GRPC_PREFIX = re.compile(r"^(dns:(//[^/]*/)?)", re.IGNORECASE)
_HOST_NAME = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$"
)


class EndpointError(ValueError):
    """Why an endpoint value is refused (says nothing secret: never the user:password part)."""


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that never leave this machine (TLS may be skipped)."""
    name = host.strip("[]").lower().rstrip(".")
    if name in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse_unprintable(value: str) -> None:
    """Whitespace and control/format characters: urllib silently drops some of them (tabs,
    newlines, leading blanks), so what it parses would not be what the file says."""
    for char in value:
        if char.isspace() or unicodedata.category(char).startswith("C"):
            raise EndpointError(
                f"must not contain whitespace or control characters (found U+{ord(char):04X})"
            )


def normalise_host(host: str) -> str:
    """A host name lower-cased and IDNA-encoded, or an IP address in its canonical form."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name:
        raise EndpointError("has no host")
    try:
        encoded = name.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise EndpointError("has a host name that is not valid (IDNA)") from None
    if not _HOST_NAME.fullmatch(encoded):
        raise EndpointError("has a host name that is not valid")
    return encoded


def _netloc(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise EndpointError("has a port that is not 1-65535")
    return int(text)


@dataclass(frozen=True)
class Endpoint:
    """Pydantic metadata: this `str` field is an address the device connects to.

    kind: "url" (`schemes` lists what is accepted; a plain-text one, http or ws, only for a
    loopback host), "grpc" (a `host:port` target, optionally `dns:///`-prefixed) or "host" (a
    bare host name or address). `tls_flag`: the section's bool field that, when false, makes
    this endpoint plain text whatever its scheme (so: loopback only). "" means unset.
    """

    kind: Literal["url", "grpc", "host"] = "url"
    schemes: tuple[str, ...] = ()
    tls_flag: str | None = None
    note: str = ""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._validate, handler(source))

    def _validate(self, value: str, info: core_schema.ValidationInfo) -> str:
        if value == "":
            return value
        try:
            return self.normalise(value)
        except EndpointError as exc:
            key = _key(info.config.get("title") if info.config else None, info.field_name)
            raise PydanticCustomError(
                "endpoint", "{key} {reason}", {"key": key, "reason": str(exc)}
            ) from None

    def normalise(self, value: str) -> str:
        """The canonical form of `value`, or EndpointError saying why it is refused."""
        _refuse_unprintable(value)
        if self.kind == "url":
            return self._url(value)
        if self.kind == "grpc":
            return self._grpc(value)
        bare = value.removeprefix("[").removesuffix("]")
        if "@" in value:
            raise EndpointError("must not carry a user name or password")
        if "/" in value or (":" in bare and not _is_ip(bare)):
            raise EndpointError("must be a host name or address (no scheme, port or path)")
        return normalise_host(value)

    def host(self, value: str) -> str:
        """The host a (normalised) value of this endpoint connects to."""
        if self.kind == "url":
            return urlsplit(value).hostname or ""
        if self.kind == "grpc":
            return _grpc_parts(value)[1]
        return value

    def _url(self, value: str) -> str:
        allowed = " or ".join(f"{scheme}://" for scheme in self.schemes)
        if "://" not in value:
            raise EndpointError(f"must be a URL with a scheme ({allowed})")
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if "@" in parts.netloc:
            raise EndpointError("must not carry a user name or password (use the *_file keys)")
        try:
            port = parts.port
        except ValueError:
            raise EndpointError("has a port that is not 1-65535") from None
        host = normalise_host(parts.hostname or "")
        if scheme in PLAINTEXT_SCHEMES and not is_loopback_host(host):
            secure = " or ".join(f"{s}://" for s in self.schemes if s not in PLAINTEXT_SCHEMES)
            raise EndpointError(
                f"must use TLS ({secure}) outside loopback, not {scheme}:// to {host}"
            )
        if scheme not in self.schemes:
            note = f" ({self.note})" if self.note else ""
            raise EndpointError(f"must be {allowed}{note}, not {scheme}://")
        return urlunsplit((scheme, _netloc(host, port), parts.path, parts.query, parts.fragment))

    def _grpc(self, value: str) -> str:
        prefix, host, port = _grpc_parts(value)
        return prefix.lower() + _netloc(normalise_host(host), port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _grpc_parts(value: str) -> tuple[str, str, int | None]:
    """(prefix, host, port) of a gRPC target: `host:port`, `[v6]:port`, `dns:///host:port`."""
    match = _GRPC_PREFIX.match(value)
    prefix = match.group(1) if match else ""
    rest = value[len(prefix) :]
    if "://" in rest or "/" in rest:
        raise EndpointError("must be a gRPC target host:port (or dns:///host:port), not a URL")
    if "@" in rest:
        raise EndpointError("must not carry a user name or password")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise EndpointError("has an unclosed [IPv6] address")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise EndpointError("must be a gRPC target host:port")
        return prefix, host, _port(tail[1:]) if tail else None
    if rest.count(":") > 1:
        raise EndpointError("must write an IPv6 address in brackets: [addr]:port")
    host, _, port = rest.partition(":")
    return prefix, host, _port(port) if port else None


def _key(title: object, field: str | None) -> str:
    """`section.field` when the section's model title is its key (see `Section`), else field."""
    name = field or "value"
    return f"{title}.{name}" if isinstance(title, str) and title.islower() else name


def endpoint_rule(field: FieldInfo) -> Endpoint | None:
    """The `Endpoint` metadata of a field (also inside `Annotated[...] | None`), if any."""
    for item in field.metadata:
        if isinstance(item, Endpoint):
            return item
    for arg in get_args(field.annotation):
        for item in get_args(arg)[1:]:
            if isinstance(item, Endpoint):
                return item
    return None


HttpUrl = Annotated[str, Endpoint(schemes=("http", "https"))]
WsUrl = Annotated[str, Endpoint(schemes=("ws", "wss"))]


class Section(BaseModel):
    """Base for every section: strict about unknown keys, validated on assignment.

    A section with endpoint fields sets `model_config = ConfigDict(title="<its key>")`, so
    errors name the key as the file spells it (`corti.auth_url`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_in_paths(cls, value: Any) -> Any:
        """TOML can spell a NUL (\\u0000); the OS cannot take one in a path, and the first
        file operation would raise ValueError (a traceback, exit 1) instead of exit 78."""
        if isinstance(value, PurePath) and "\x00" in str(value):
            raise ValueError("a path must not contain a NUL character")
        return value

    @model_validator(mode="after")
    def _plaintext_only_to_loopback(self) -> Self:
        """The cross-field half of the endpoint rule: `tls = false` only for loopback."""
        section = type(self).model_config.get("title")
        for name, field in type(self).model_fields.items():
            rule = endpoint_rule(field)
            value = getattr(self, name)
            if rule is None or rule.tls_flag is None or not value:
                continue
            host = rule.host(value)
            if not getattr(self, rule.tls_flag) and not is_loopback_host(host):
                flag = _key(section, rule.tls_flag)
                raise ValueError(
                    f"{flag} = false (plain text) is only allowed for loopback; "
                    f"{_key(section, name)} is {host}"
                )
        return self
