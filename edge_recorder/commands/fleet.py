"""`edge-recorder fleet watch`: a live table of every device under a topic prefix.

Retained availability and status mean a fresh watcher sees the whole fleet at once. `--once`
waits until the broker has delivered those retained messages (a marker message published
after subscribing comes back behind them), prints one snapshot and exits: for scripts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit

#: Exit status for a watch not told where the broker is (as argparse exits for bad usage).
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fleet",
        help="watch the fleet over MQTT",
        description="Fleet tools over MQTT. Without --broker the [mqtt] section of the config "
        "names the broker, prefix and TLS settings.",
    )
    sub = parser.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", required=True)
    watch = sub.add_parser(
        "watch",
        help="live table of devices (state, last seen, backlog, mic, version)",
        description="A live terminal table of every device under the prefix; offline devices "
        "in red, alerting ones in yellow. --once prints one snapshot and exits.",
    )
    add_config_argument(watch)
    watch.add_argument("--broker", metavar="HOST", help="broker host (default: mqtt.host)")
    watch.add_argument("--port", type=int, metavar="P", help="broker port (default 1883/8883)")
    watch.add_argument("--prefix", metavar="P", help="topic prefix (default: mqtt.topic_prefix)")
    watch.add_argument("--tls", action="store_true", help="connect with TLS")
    watch.add_argument("--ca-file", type=Path, metavar="F", help="CA bundle for TLS")
    watch.add_argument("--username", metavar="U", help="broker user name")
    watch.add_argument("--password-file", type=Path, metavar="F", help="file with the password")
    watch.add_argument("--once", action="store_true", help="print one snapshot and exit")
    watch.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="longest wait (default 5 s)"
    )
    watch.add_argument("--json", action="store_true", help="with --once: JSON instead of a table")
    watch.add_argument("--no-color", action="store_true", help="no ANSI colours")
    watch.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Broker settings from the flags, else from the config's [mqtt] section."""
    if args.broker:
        return {
            "host": args.broker,
            "port": args.port or (8883 if args.tls else 1883),
            "prefix": args.prefix or "edge-recorder",
            "tls": args.tls or args.ca_file is not None,
            "ca_file": args.ca_file,
            "username": args.username,
            "password_file": args.password_file,
        }
    # Usage errors (exit 2): the watch was not told where the broker is, neither by --broker
    # nor by a config file that sets mqtt.host. A config file that exists but is invalid is a
    # config error like for every command (exit 78, with the key that is wrong).
    path = config_path(args)
    if not path.exists():
        _no_broker(f"no config file {path}")
    mqtt_cfg = load_or_exit(args, usable=False).mqtt
    if not mqtt_cfg.host:
        _no_broker(f"{path} sets no mqtt.host")
    return {
        "host": mqtt_cfg.host,
        "port": args.port or mqtt_cfg.port,
        "prefix": args.prefix or mqtt_cfg.topic_prefix,
        "tls": args.tls or mqtt_cfg.tls,
        "ca_file": args.ca_file or mqtt_cfg.ca_file,
        "username": args.username or mqtt_cfg.username,
        "password_file": args.password_file or mqtt_cfg.password_file,
    }


def _no_broker(why: str) -> NoReturn:
    print(
        f"edge-recorder fleet watch: no broker: give --broker, or a config with mqtt.host ({why})",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_USAGE)


def run(args: argparse.Namespace) -> int:
    import json
    import threading
    import time
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_recorder.fleet.connection import no_delay
    from edge_recorder.fleet.topics import fleet_filters
    from edge_recorder.fleet.watch import FleetView, render, snapshot
    from edge_recorder.support.credentials import SecretUnavailable, read_secret

    settings = _settings(args)
    view = FleetView(settings["prefix"])
    lock = threading.Lock()
    synced, connected = threading.Event(), threading.Event()
    refused: list[str] = []
    marker = f"{settings['prefix']}/_watch/{uuid.uuid4().hex}"

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"edge-recorder-watch-{uuid.uuid4().hex[:8]}"
    )
    client.on_socket_open = no_delay
    if settings["tls"]:
        ca = settings["ca_file"]
        client.tls_set(ca_certs=str(ca) if ca else None)
    if settings["username"]:
        try:
            password = read_secret(settings["password_file"], "mqtt-password")
        except SecretUnavailable:
            password = None
        client.username_pw_set(settings["username"], password)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            connected.set()
            return
        c.subscribe([(f, 1) for f in fleet_filters(settings["prefix"])] + [(marker, 1)])
        connected.set()

    def on_subscribe(c: mqtt.Client, *_a: Any) -> None:
        c.publish(marker, b"sync", qos=1)  # comes back after the retained messages

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == marker:
            synced.set()
            return
        with lock:
            view.apply(msg.topic, bytes(msg.payload))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    where = f"{settings['host']}:{settings['port']}"
    try:
        client.connect(settings["host"], settings["port"], keepalive=30)
    except (OSError, ValueError) as exc:
        print(f"edge-recorder fleet watch: cannot reach broker {where}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    try:
        if not connected.wait(args.timeout) or refused:
            reason = refused[0] if refused else "no answer"
            print(f"edge-recorder fleet watch: broker {where} refused: {reason}", file=sys.stderr)
            return 1
        if args.once:
            if not synced.wait(args.timeout):
                print(
                    "edge-recorder fleet watch: retained messages may be incomplete",
                    file=sys.stderr,
                )
            with lock:
                if args.json:
                    print(json.dumps(snapshot(view, time.time()), indent=2))
                else:
                    print(render(view, time.time(), color=False))
            return 0
        color = not args.no_color and sys.stdout.isatty()
        tick = threading.Event()
        while True:
            with lock:
                table = render(view, time.time(), color=color)
            sys.stdout.write("\x1b[H\x1b[2J" + f"fleet {settings['prefix']} @ {where}\n" + table)
            sys.stdout.write("\n")
            sys.stdout.flush()
            tick.wait(1.0)  # the redraw period
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()
        client.loop_stop()
