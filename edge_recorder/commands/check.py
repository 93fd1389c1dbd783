"""`edge-recorder check`: validate the config and say, readably, what the device would do."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit
from edge_recorder.config.loader import EX_CONFIG, ConfigError, print_config_error

if TYPE_CHECKING:
    from edge_recorder.config.model import Config
    from edge_recorder.support.checks import CheckResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate the config (exit 78 on errors); --probe also tests mic and endpoints",
        description="Validate the configuration and print a readable report. A config error "
        "exits 78 (EX_CONFIG) with one 'key.path: reason' line per problem; so does a config "
        "the device could record with but never deliver from (no endpoint or ids for "
        "uplink.service).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also open the mic, read the secrets and reach each endpoint (exit 1 on failure)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_recorder.capture.registry import probe_mic
    from edge_recorder.fleet.probe import probe_mqtt
    from edge_recorder.support.checks import CheckResult, Probe, summary
    from edge_recorder.uplinks.registry import service_spec

    config = load_or_exit(args)
    rows: list[CheckResult] = [CheckResult("config", "ok", f"{config_path(args)} is valid")]
    rows.extend(summary(config))
    rows.extend(CheckResult("audio profile", "warn", line) for line in _outvoted(args))
    rows.extend(calibration_rows(config))
    delivery = delivery_row(config)
    rows.append(delivery)
    if args.probe:
        probes: list[tuple[str, Probe]] = [
            ("mic", probe_mic),
            (config.uplink.service, service_spec(config).probe),
            ("mqtt", probe_mqtt),
        ]
        for name, probe in probes:
            try:
                rows.extend(probe(config))
            except Exception as exc:  # a probe bug must not hide the other results
                rows.append(CheckResult(name, "fail", f"probe crashed: {exc}"))
    failed = any(row.status == "fail" for row in rows)
    if args.json:
        json.dump([row.__dict__ for row in rows], sys.stdout, indent=2)
        print()
    else:
        marks = {"ok": "ok  ", "info": "    ", "warn": "WARN", "fail": "FAIL"}
        for row in rows:
            print(f"{marks[row.status]}  {row.name:<20} {row.detail}")
        print("result: " + ("FAILED" if failed else "ok"))
    if delivery.status == "fail":  # the service config is incomplete: a config error
        reason = delivery.detail.split(": ", 1)[-1]
        print_config_error(
            ConfigError(
                [f"{reason} (uplink.service = {config.uplink.service!r} cannot deliver)"],
                str(config_path(args)),
            )
        )
        return EX_CONFIG
    return 1 if failed else 0


def _outvoted(args: argparse.Namespace) -> list[str]:
    """Profile keys the config file sets back to the generic default (see hardware.outvoted)."""
    from edge_recorder.config.errors import read_toml
    from edge_recorder.config.hardware import outvoted

    path = config_path(args)
    return outvoted(read_toml(path)) if path is not None and path.exists() else []


def calibration_rows(config: Config) -> list[CheckResult]:
    """With array_processing = "calibrated": is the room's calibration usable, or which blind
    beam runs instead and why (a warning: the device records either way)."""
    from edge_recorder.audio.array.stage import (
        fallback_detail,
        load_array_calibration,
        mic_positions_m,
    )
    from edge_recorder.support.checks import CheckResult

    audio = config.audio
    if audio.array_processing != "calibrated":
        return []
    path = audio.array_calibration
    calibration, reason = load_array_calibration(path, mic_positions_m(audio))
    if calibration is None:
        return [CheckResult("array calibration", "warn", fallback_detail(reason, audio))]
    names = ", ".join(spot.name for spot in calibration.spots)
    return [
        CheckResult("array calibration", "ok", f"{path}: spots {names} ({calibration.created})")
    ]


def delivery_row(config: Config) -> CheckResult:
    """Can `uplink.service` deliver with this config? The same test the daemon's delivery
    engine makes at start-up (build the uplinks, name the identity), so a config `check`
    passes never runs as a daemon that records but silently delivers nothing."""
    from edge_recorder.support.checks import CheckResult
    from edge_recorder.uplinks.bundle import MemoryState
    from edge_recorder.uplinks.registry import build_uplinks

    service = config.uplink.service
    try:
        uplinks = build_uplinks(config, MemoryState())
        try:
            uplinks.identity("edge-recorder-check")
        finally:
            asyncio.run(uplinks.aclose())
    except (ValueError, OSError) as exc:
        return CheckResult("delivery", "fail", f"{service} cannot deliver: {exc}")
    return CheckResult("delivery", "ok", f"{service}: endpoints and ids configured")
