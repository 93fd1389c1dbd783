"""`edge-recorder fleet watch`: a live table of every device under a topic prefix.

Retained availability and status mean a fresh watcher sees the whole fleet at once. `--once`
waits until the broker has delivered those retained messages (a marker message published
after subscribing comes back behind them), prints one snapshot and exits: for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from edge_recorder.commands._common import add_config_argument, config_path, load_or_exit
from edge_recorder.commands._fleet_serve import add_serve_parsers

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
        help="live table of devices, problems first (state, seen, backlog, mic, version)",
        description="A live terminal table of every device under the prefix, problems first "
        "(offline and stale in red, alerting in yellow), fitted to the terminal: space/PgDn "
        "next page, b/PgUp previous, q quits. --once prints one snapshot and exits.",
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
    watch.add_argument(
        "--page",
        type=_page_number,
        metavar="N",
        help="show page N (without a keyboard, or with --once: one screenful of rows)",
    )
    watch.set_defaults(func=run)
    add_serve_parsers(sub)  # `fleet serve` (the web dashboard) and `fleet passwd`


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


def _page_number(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("pages count from 1")
    return value


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import shutil
    import threading
    import time
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_recorder.fleet.connection import no_delay
    from edge_recorder.fleet.topics import fleet_filters
    from edge_recorder.fleet.watch import FleetView, snapshot
    from edge_recorder.fleet.watch_screen import Screen, frame, render, turn
    from edge_recorder.support.credentials import SecretUnavailable, read_secret

    settings = _settings(args)
    view = FleetView(settings["prefix"])
    lock = threading.Lock()
    synced, connected = threading.Event(), threading.Event()
    refused: list[str] = []
    lost_since: list[float] = []  # [when the broker went away] while disconnected
    marker = f"{settings['prefix']}/_watch/{uuid.uuid4().hex}"

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"edge-recorder-watch-{uuid.uuid4().hex[:8]}"
    )
    client.on_socket_open = no_delay
    client.reconnect_delay_set(1, 10)
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
        with lock:
            lost_since.clear()
        c.subscribe([(f, 1) for f in fleet_filters(settings["prefix"])] + [(marker, 1)])
        connected.set()

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        with lock:
            if not lost_since:
                lost_since.append(time.time())

    def on_subscribe(c: mqtt.Client, *_a: Any) -> None:
        c.publish(marker, b"sync", qos=1)  # comes back after the retained messages

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == marker:
            synced.set()
            return
        with lock:
            view.apply(msg.topic, bytes(msg.payload))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.on_disconnect = on_disconnect
    where = f"{settings['host']}:{settings['port']}"
    source = f"{settings['prefix']} @ {where}"
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
            # Fit the terminal when there is one (or COLUMNS/LINES say so); a pipe gets every
            # row uncut unless --page asks for one screenful.
            size = shutil.get_terminal_size()
            sized = sys.stdout.isatty() or "COLUMNS" in os.environ
            with lock:
                if args.json:
                    print(json.dumps(snapshot(view, time.time()), indent=2))
                else:
                    table = render(
                        view,
                        time.time(),
                        color=False,
                        width=size.columns if sized else None,
                        height=size.lines if args.page else None,
                        page=args.page or 1,
                        source=source,
                    )
                    print(table)
            return 0
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        color = not args.no_color and sys.stdout.isatty()
        hint = "space/b page, q quit" if interactive else None
        page = args.page or 1
        with _screen(interactive) as wait_keys:
            clear = "\x1b[2J"
            while True:
                size = shutil.get_terminal_size()
                with lock:
                    lost = lost_since[0] if lost_since else None
                    screen = Screen(size.columns, size.lines, page, source, lost, hint)
                    shown = frame(view, time.time(), screen, color=color)
                page = shown.page
                # Home, overwrite each line and clear its rest, clear below: no flicker.
                sys.stdout.write("\x1b[H" + clear + "\x1b[K\n".join(shown.lines) + "\x1b[K\x1b[J")
                sys.stdout.flush()
                clear = ""
                for action in wait_keys(1.0):  # the redraw period, or at once on a key
                    if action == "quit":
                        return 0
                    page = turn(page, shown.pages, action)
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def _screen(interactive: bool) -> Iterator[Callable[[float], list[str]]]:
    """Yield `wait(timeout) -> paging actions`; on a terminal: cbreak keys, alternate screen.

    The terminal is restored on every way out (q, Ctrl-C, SIGTERM).
    """
    import os
    import select
    import signal
    import threading

    from edge_recorder.fleet.watch_screen import keys

    if not interactive:
        tick = threading.Event()

        def wait_only(timeout: float) -> list[str]:
            tick.wait(timeout)
            return []

        yield wait_only
        return

    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    def read_keys(timeout: float) -> list[str]:
        ready, _, _ = select.select([fd], [], [], timeout)
        return keys(os.read(fd, 64)) if ready else []

    previous = signal.signal(signal.SIGTERM, on_term)
    tty.setcbreak(fd)
    sys.stdout.write("\x1b[?1049h\x1b[?25l")  # alternate screen, cursor hidden
    try:
        yield read_keys
    finally:
        sys.stdout.write("\x1b[?25h\x1b[?1049l")
        sys.stdout.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGTERM, previous)
