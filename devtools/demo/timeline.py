"""The demo's readable timeline: one line per thing that happened, with its time offset.

Sources, each shown with its own tag:
- `state`     the daemon's sd_notify STATUS= line (what systemd shows), on every change;
- `led`       the indicator patterns the daemon asked the (mock) LEDs for (`sim led_history`);
- `mqtt`      availability, status (when its summary changes) and events seen on the broker;
- `delivery`  the emulator's inspection API: bytes held per recording, states, processing;
- `demo`, `network`, `setup`: what the script itself does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import IO, Any

from edge_recorder.panel.patterns import (
    AMBER,
    BLUE,
    DIM_GREEN,
    GREEN,
    MAGENTA,
    OFF,
    PATTERNS,
    RED,
    WHITE,
    Light,
    describe,
)

BYTES_PER_S = 32000  # 16 kHz mono PCM16
PROGRESS_EVERY_S = 2.0  # at most one progress line per recording this often


class Timeline:
    """Thread-safe printer: `+  12.3s  tag       text`.

    Printing never raises: when stdout's reader is gone (`demo | tee` and a Ctrl-C that
    killed tee too), the lines are kept in `lines` but no longer printed, so the signal
    handler and the clean-up that stops the children run to the end regardless."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.start = time.monotonic()
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._broken = False
        self.lines: list[str] = []

    def offset(self, at: float | None = None) -> float:
        return (time.monotonic() if at is None else at) - self.start

    def say(self, tag: str, text: str, at: float | None = None) -> None:
        self.plain(f"{self.offset(at):+8.1f}s  {tag:<9} {text}")

    def plain(self, text: str = "") -> None:
        with self._lock:
            self.lines.append(text)
            if self._broken:
                return
            try:
                print(text, file=self._out, flush=True)
            except (OSError, ValueError):  # BrokenPipeError, EIO, or a closed file
                self._broken = True
                self._silence()

    def _silence(self) -> None:
        """Point a broken stdout at /dev/null: the interpreter flushes it once more at exit,
        and that flush would otherwise print "Exception ignored ... BrokenPipeError"."""
        try:
            fd = self._out.fileno()
        except (OSError, ValueError, AttributeError):
            return
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)


_COLOURS = {RED: "red", AMBER: "amber", MAGENTA: "magenta", WHITE: "white", BLUE: "blue"}
_COLOURS.update({DIM_GREEN: "dim green", GREEN: "green", OFF: "off"})


def light_text(light: Light) -> str:
    on, off = _COLOURS.get(light.on, str(light.on)), _COLOURS.get(light.off, str(light.off))
    if light.solid:
        return "off" if light.on == OFF else f"solid {on}"
    if light.count > 1:  # a double or triple blink
        return describe(light)
    return f"{on} {light.on_s:g} s / {off} {light.off_s:g} s"


def describe_pattern(name: str) -> str:
    """`recording: RGB solid red (recording)`, from the documented pattern table."""
    pattern = PATTERNS.get(name)  # type: ignore[call-overload]
    if pattern is None:
        return name
    return f"{name}: RGB {light_text(pattern.rgb)} ({pattern.meaning})"


def seconds_of(n_bytes: int) -> str:
    return f"{n_bytes / BYTES_PER_S:.1f} s of audio"


# ---------------------------------------------------------------------------- MQTT


class MqttWatcher:
    """A paho subscriber on the device's topics that narrates what a fleet dashboard sees."""

    def __init__(self, timeline: Timeline, host: str, port: int, prefix: str, device: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._timeline = timeline
        self._base = f"{prefix}/{device}"
        self._last_status: str | None = None
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"demo-watch-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_a: c.subscribe(f"{self._base}/#", qos=1)
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        leaf = msg.topic.removeprefix(self._base + "/")
        try:
            body = json.loads(msg.payload)
        except ValueError:
            self._timeline.say("mqtt", f"{leaf}: {len(msg.payload)} bytes (not JSON)")
            return
        if not isinstance(body, dict):
            return
        if leaf == "availability":
            self._timeline.say("mqtt", f"availability {body.get('state')} ({body.get('reason')})")
        elif leaf == "status":
            backlog = body.get("backlog") or {}
            seq = body.get("recording_seq")
            summary = (
                f"status state={body.get('state')}"
                + (f" recording #{seq}" if seq else "")
                + f" uplink={'online' if body.get('uplink_online') else 'offline'}"
                + f" backlog={backlog.get('recordings', 0)} rec"
            )
            if summary != self._last_status:
                self._last_status = summary
                self._timeline.say("mqtt", summary)
        elif leaf == "events":
            ref = body.get("encounter_ref")
            extra = f" encounter_ref={ref}" if ref else ""
            code = f" code={body['code']}" if body.get("code") else ""
            self._timeline.say("mqtt", f"event {body.get('type')}{code}{extra}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------------- pollers

Fetch = Callable[[], Awaitable[Any]]


async def watch_leds(timeline: Timeline, fetch: Fetch, period_s: float = 0.2) -> None:
    """Print each indicator pattern the daemon shows, at the time it was set."""
    seen = 0
    while True:
        try:
            data = await fetch()
        except (OSError, ValueError, TimeoutError):
            data = None
        if isinstance(data, dict):
            indicators = data.get("indicators") or []
            if len(indicators) < seen:  # a new daemon (keep mode restarts it): a new history
                seen = 0
            for at, name in indicators[seen:]:
                timeline.say("led", describe_pattern(str(name)), at=float(at))
            seen = max(seen, len(indicators))
        await asyncio.sleep(period_s)  # a polling period, not synchronisation


class DeliveryWatcher:
    """Polls the emulator's inspection API for one encounter and narrates the changes."""

    def __init__(self, timeline: Timeline, fetch_session: Callable[[str], Awaitable[Any]]):
        self._timeline = timeline
        self._fetch = fetch_session
        self.correlation_id: str | None = None
        self.session: dict[str, Any] | None = None
        self._seen: dict[str, tuple[str, int, float]] = {}  # recording → (state, bytes, when)
        self._processing = False

    async def run(self, period_s: float = 0.25) -> None:
        while True:
            if self.correlation_id is not None:
                try:
                    session = await self._fetch(self.correlation_id)
                except (OSError, LookupError, ValueError, TimeoutError):
                    session = None
                if isinstance(session, dict):
                    self.session = session
                    self.report(session)
            await asyncio.sleep(period_s)  # a polling period, not synchronisation

    def report(self, session: dict[str, Any]) -> None:
        """Print what changed since the last report."""
        now = time.monotonic()
        for rec in session.get("recordings", []):
            rid, state, held = rec["recordingId"], rec["state"], int(rec["bytes"])
            old = self._seen.get(rid)
            label = f"recording #{rec['sequenceNumber']} ({rec['transport']})"
            if old is None:
                text = f"service opened {label}"
            elif old[0] != state:
                text = f"{label} {state}: service holds {held} bytes ({seconds_of(held)})"
            elif held != old[1] and now - old[2] >= PROGRESS_EVERY_S:
                text = f"{label}: service holds {held} bytes ({seconds_of(held)})"
            else:
                continue  # nothing new, or progress shown at the next period
            self._timeline.say("delivery", text)
            self._seen[rid] = (state, held, now)
        if session.get("processingStarted") and not self._processing:
            self._processing = True
            self._timeline.say("delivery", "StartProcessing: the service is processing it")
