"""Pieces every config section shares, kept apart so per-service sections can live beside
their sections (`edge_recorder/config/services/<service>.py`) without importing the model."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

SampleFormat = Literal["S16_LE", "S24_LE", "S32_LE"]
Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
GpioPin = Annotated[int, Field(ge=0, le=53)]


class Section(BaseModel):
    """Base for every section: strict about unknown keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that never leave this machine (TLS may be skipped)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(endpoint: str) -> str:
    """Host part of a URL (`https://h:1/x`) or a gRPC target (`h:1`, `dns:///h:1`)."""
    if "://" in endpoint:
        return urlsplit(endpoint).hostname or ""
    target = endpoint.removeprefix("dns:///").removeprefix("ipv4:")
    if target.startswith("["):
        return target[1 : target.find("]")]
    return target.rsplit(":", 1)[0]


def require_tls_outside_loopback(section: str, key: str, url: str) -> None:
    """Refuse a plain-text URL (http://, ws://) that leaves this machine."""
    if url and url.split("://", 1)[0] in ("http", "ws") and not is_loopback_host(host_of(url)):
        raise ValueError(f"{section}.{key} must use TLS (https:// or wss://) outside loopback")
