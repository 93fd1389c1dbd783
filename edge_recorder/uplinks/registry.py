"""Every service the device can deliver to, by its `uplink.service` name: one registry.

A service is a self-contained package under `edge_recorder/uplinks/<service>/` (its clients, its
`factory`, optionally its own `probe`) plus one entry here; the delivery engine
(`build_uplinks`), `edge-recorder check` (`SERVICES[...].probe`, the optional extra it needs),
the daemon's reload rule (`config_sections`) and the developer tools' emulator choices all read
this table, so nothing else lists the services.

Every builder and probe imports its service's package only when called: the AWS one needs the
optional `aws` extra, and the others' libraries are large (gRPC and protobuf ~12 MB of RSS,
aiohttp ~11 MB, PyJWT's elliptic-curve code ~3 MB), so a device loads only its own service's.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.config.model import Config
from edge_recorder.support.checks import CheckResult, Probe
from edge_recorder.uplinks.base import UplinkState
from edge_recorder.uplinks.bundle import Uplinks
from edge_recorder.uplinks.probe import UplinksBuilder, generic_probe


@dataclass(frozen=True)
class ServiceSpec:
    """What the rest of the device needs to know about one service."""

    build: UplinksBuilder
    probe: Probe
    config_sections: tuple[str, ...]  # a change to these restarts delivery on reload
    emulator: str  # the devtools emulator that stands in for it (`edge-recorder emulator`)
    extra: str | None = None  # the optional extra its libraries come in


def _aas(config: Config, state: UplinkState) -> Uplinks:
    from edge_recorder.uplinks.aas.factory import aas_uplinks

    return aas_uplinks(config, state)


def _aas_probe(config: Config) -> list[CheckResult]:
    from edge_recorder.uplinks.aas.probe import probe_aas

    return probe_aas(config)


def _corti(config: Config, state: UplinkState) -> Uplinks:
    from edge_recorder.uplinks.corti.factory import corti_uplinks

    return corti_uplinks(config, state)


def _corti_probe(config: Config) -> list[CheckResult]:
    from edge_recorder.uplinks.corti.probe import probe_corti

    return probe_corti(config)


def _dice(config: Config, state: UplinkState) -> Uplinks:
    from edge_recorder.uplinks.dice.factory import dice_uplinks

    return dice_uplinks(config, state)


def _aws(config: Config, state: UplinkState) -> Uplinks:
    from edge_recorder.uplinks.aws.factory import aws_uplinks  # the `aws` extra

    return aws_uplinks(config, state)


_AWS = ServiceSpec(_aws, generic_probe(_aws), ("uplink", "aws"), "aws", extra="aws")

SERVICES: dict[str, ServiceSpec] = {
    "aas": ServiceSpec(_aas, _aas_probe, ("uplink", "auth", "aas"), "aas"),
    "corti": ServiceSpec(_corti, _corti_probe, ("uplink", "corti"), "corti"),
    "dice": ServiceSpec(_dice, generic_probe(_dice), ("uplink", "dice"), "dice"),
    "aws-connect-health": _AWS,
    "aws-healthscribe": _AWS,
}

#: Every section whose change restarts delivery (the daemon applies the rest live).
DELIVERY_SECTIONS = frozenset(s for spec in SERVICES.values() for s in spec.config_sections)


def service_spec(config: Config) -> ServiceSpec:
    return SERVICES[config.uplink.service]


def build_uplinks(config: Config, state: UplinkState) -> Uplinks:
    """The uplinks of `uplink.service` (no I/O until used); ValueError names a missing key."""
    return service_spec(config).build(config, state)
