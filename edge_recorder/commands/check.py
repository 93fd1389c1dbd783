"""`edge-recorder check`: validate the config and say, readably, what the device would do."""

from __future__ import annotations

import argparse
import json
import sys

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate the config (exit 78 on errors); --probe also tests mic and endpoints",
        description="Validate the configuration and print a readable report. A config error "
        "exits 78 (EX_CONFIG) with one 'key.path: reason' line per problem.",
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
    return 1 if failed else 0
