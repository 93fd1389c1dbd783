"""Soak: the real daemon through hours of simulated encounters; RSS, fds, threads, log volume.

Set-up (all on loopback, nothing faked inside the daemon): the real `edge-recorder run` as a
child process; its microphone the generated speech-like source at `--speed` x real time (the
WAV source ends with its file; the generated one is endless, so a run of simulated hours
needs no 900 MB file); energy VAD (the soak is about leaks, not CPU); live gRPC delivery to
the AAS emulator (in this process) through fault proxies; MQTT on a real mosquitto, with a
`ping` command every 2 s; `ctl status` polled every second, as a dashboard or a kiosk would.

Encounters of `ENCOUNTER_SIM_S` simulated seconds follow each other with a pause; every third
one loses the network (both proxies cut) for its middle third, so the spool, the backlog and
the REST path run too. Every `SAMPLE_S` seconds the daemon's VmRSS, open file descriptors,
threads and log size are sampled.

Goals, after a warm-up (the first quarter of the run): RSS growth < 5 MB (median of the last
three samples minus the median of the three after warm-up), no growth in fds or threads (the
mean count over the last third after warm-up within `COUNT_NOISE` of the first third's), log
bytes per cycle of three encounters flat (the last cycle within 25 % of the first after the
warm-up cycle), every encounter handed to processing at the service and every MQTT ping
answered.

Alone: `python -m benchmarks.bench_soak [--hours H] [--speed X]` prints the JSON;
`make soak` runs 8 simulated hours (about 12 minutes at 40x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._daemon import start_daemon, start_rig, status_kb
from devtools.demo.services import ControlClient, write_toml
from devtools.faultproxy import FaultProxy

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # see bench_daemon

ENCOUNTER_SIM_S = 900.0  # a 15-minute visit
PAUSE_S = 1.0  # real seconds between encounters
SAMPLE_S = 5.0
COUNT_NOISE = 0.75  # fds/threads: a leak moves a third's mean by 1, the cycle by ~0.3
SPEED = 40.0
GOAL_RSS_GROWTH_MB = 5.0


def _sample(pid: int, log: Path, sim_s: float) -> dict[str, float]:
    return {
        "t_sim_h": round(sim_s / 3600, 3),
        "rss_mb": round(status_kb(pid, "VmRSS") / 1024, 2),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "log_bytes": log.stat().st_size,
    }


class _Pinger:
    """A fleet operator's MQTT client: a `ping` every 2 s, counting the answers."""

    def __init__(self, port: int, device_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.sent = 0
        self.answered: set[str] = set()
        self._base = f"edge-recorder/{device_id}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-operator")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"{self._base}/cmd/response", qos=1)
        self._client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.answered.add(str(json.loads(message.payload)["request_id"]))

    def ping(self) -> None:
        self.sent += 1
        body = {"request_id": f"soak-{self.sent}-{uuid.uuid4().hex[:6]}"}
        self._client.publish(f"{self._base}/cmd/ping", json.dumps(body), qos=1)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


async def _soak(hours: float, speed: float, tmp: Path) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        rig = await start_rig(stack, tmp, "soak-room")
        short, tree, emulator = rig.short, rig.tree, rig.emulator
        grpc_port = int(emulator.grpc_target.rsplit(":", 1)[1])
        http_port = int(emulator.http_url.rsplit(":", 1)[1])
        grpc = await FaultProxy("127.0.0.1", grpc_port).start()
        stack.push_async_callback(grpc.stop)
        http = await FaultProxy("127.0.0.1", http_port).start()
        stack.push_async_callback(http.stop)
        tree["aas"].update(
            grpc_target=f"127.0.0.1:{grpc.port}", rest_url=f"http://127.0.0.1:{http.port}"
        )
        tree["auth"]["token_url"] = f"http://127.0.0.1:{http.port}/oauth2/token"
        tree.update(
            audio={"source": "synthetic", "speed": speed},
            vad={"engine": "energy"},
            uplink={"retry_initial_s": 0.5, "retry_max_s": 5.0, "request_timeout_s": 10.0},
        )
        config = write_toml(tmp / "device.toml", tree)
        log = tmp / "daemon.log"
        daemon = await start_daemon(stack, config, short, log)
        control = ControlClient(short / "ctl.sock")
        assert rig.broker is not None
        pinger = _Pinger(rig.broker.port, "soak-room")
        stack.callback(pinger.close)

        samples: list[dict[str, float]] = []
        encounters: list[str] = []
        log_marks: list[int] = [log.stat().st_size]  # the log's size after each encounter
        polls = 0
        started = time.monotonic()
        real_total = hours * 3600 / speed
        stop_background = asyncio.Event()

        def sim_now() -> float:
            return (time.monotonic() - started) * speed

        async def background() -> None:
            nonlocal polls
            next_sample = next_ping = time.monotonic()
            while not stop_background.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    samples.append(_sample(daemon.pid, log, sim_now()))
                    next_sample += SAMPLE_S
                if now >= next_ping:
                    pinger.ping()
                    next_ping += 2.0
                await control.status()  # a kiosk polling ctl status every second
                polls += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # the polling period itself
                        await stop_background.wait()

        poller = asyncio.create_task(background())
        try:
            while time.monotonic() - started < real_total:
                answer = await control.ok({"cmd": "start"})
                encounters.append(str(answer["correlation_id"]))
                third = ENCOUNTER_SIM_S / speed / 3
                cut = len(encounters) % 3 == 0
                await asyncio.sleep(third)  # the encounter's length (simulated time)
                if cut:
                    grpc.cut()
                    http.cut()
                await asyncio.sleep(third)
                if cut:
                    grpc.pass_through()
                    http.pass_through()
                await asyncio.sleep(third)
                await control.ok({"cmd": "stop"})
                await control.wait_for(lambda s: s["state"] == "idle", 60, "idle")
                await asyncio.sleep(PAUSE_S)  # the room between two patients
                log_marks.append(log.stat().st_size)
            deadline = time.monotonic() + 120

            async def processed() -> int:
                done = 0
                for cid in encounters:
                    with contextlib.suppress(LookupError):
                        session = emulator.ctx.store.get(cid)
                        done += bool(session and session.processing_started)
                return done

            while await processed() < len(encounters) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):  # the backlog drains at its own pace
                    async with asyncio.timeout(1.0):
                        await stop_background.wait()
            samples.append(_sample(daemon.pid, log, sim_now()))
            delivered = await processed()
        finally:
            stop_background.set()
            await poller
    return _summary(samples, encounters, delivered, pinger, polls, hours, speed, log_marks)


def _summary(
    samples: list[dict[str, float]],
    encounters: list[str],
    delivered: int,
    pinger: _Pinger,
    polls: int,
    hours: float,
    speed: float,
    log_marks: list[int],
) -> dict[str, Any]:
    warm = max(1, len(samples) // 4)
    after_warm = samples[warm : warm + 3] or samples[-3:]
    last = samples[-3:]

    def growth(key: str) -> float:
        return round(
            statistics.median(s[key] for s in last) - statistics.median(s[key] for s in after_warm),
            2,
        )

    def count_growth(key: str) -> float:
        """Fds and threads come and go with the encounter cycle (a network cut closes and
        reopens sockets, a sample may land mid-connection), so three samples' median moved
        by one either way from run to run (+1 and -1 in two runs). The mean over a third of
        the run after warm-up (~20 samples) moves by ~0.3 at most; a leak moves it by 1."""
        stretch = max(3, (len(samples) - warm) // 3)
        first = samples[warm : warm + stretch] or samples[-stretch:]
        later = statistics.fmean(s[key] for s in samples[-stretch:])
        return round(later - statistics.fmean(s[key] for s in first), 2)

    # log bytes per cycle of three encounters (the third one loses the network)
    cycles = [log_marks[i] - log_marks[i - 3] for i in range(3, len(log_marks), 3)]
    return {
        "simulated_hours": hours,
        "speed": speed,
        "encounters": len(encounters),
        "encounters_processed": delivered,
        "pings_sent": pinger.sent,
        "pings_answered": len(pinger.answered),
        "ctl_polls": polls,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_end_mb": samples[-1]["rss_mb"],
        "rss_growth_mb": growth("rss_mb"),
        "fd_growth": count_growth("fds"),
        "thread_growth": count_growth("threads"),
        "log_bytes_per_cycle": cycles,
        "samples": samples,
    }


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    cycles = result["log_bytes_per_cycle"][1:]  # the first cycle is the warm-up
    steady = len(cycles) >= 2 and cycles[-1] <= 1.25 * cycles[0] + 2048
    return [
        {
            "goal": f"RSS growth after warm-up < {GOAL_RSS_GROWTH_MB:g} MB",
            "value": result["rss_growth_mb"],
            "met": result["rss_growth_mb"] < GOAL_RSS_GROWTH_MB,
        },
        {
            "goal": f"no fd growth (last third's mean within {COUNT_NOISE:g} of the first's)",
            "value": result["fd_growth"],
            "met": result["fd_growth"] < COUNT_NOISE,
        },
        {
            "goal": f"no thread growth (the same, within {COUNT_NOISE:g})",
            "value": result["thread_growth"],
            "met": result["thread_growth"] < COUNT_NOISE,
        },
        {
            "goal": "log volume flat (last cycle of 3 encounters <= first after warm-up + 25 %)",
            "value": cycles,
            "met": steady,
        },
        {
            "goal": "every encounter handed to processing",
            "value": f"{result['encounters_processed']}/{result['encounters']}",
            "met": result["encounters_processed"] == result["encounters"],
        },
        {
            "goal": "every MQTT ping answered",
            "value": f"{result['pings_answered']}/{result['pings_sent']}",
            # the last one may still be in flight
            "met": result["pings_answered"] >= result["pings_sent"] - 1,
        },
    ]


def soak(hours: float, speed: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as name:
        return asyncio.run(_soak(hours, speed, Path(name)))


def run(quick: bool) -> dict[str, Any]:
    hours = 2.5 if quick else 5.0  # at least 3 cycles of 3 encounters
    result = soak(hours, SPEED)
    rows = [
        [s["t_sim_h"], s["rss_mb"], s["fds"], s["threads"], s["log_bytes"]]
        for s in result["samples"][:: max(1, len(result["samples"]) // 12)]
    ]
    return {
        "title": f"Soak: {hours:g} simulated hours of encounters at {SPEED:g}x (network cuts, "
        "MQTT pings, ctl polling)",
        "columns": ["simulated h", "RSS MB", "fds", "threads", "log bytes"],
        "rows": rows,
        "goals": goals(result),
        "detail": {k: v for k, v in result.items() if k != "samples"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours (default 8)")
    parser.add_argument("--speed", type=float, default=SPEED, help="x real time (default 40)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    result = soak(args.hours, args.speed)
    result["goals"] = goals(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if all(g["met"] for g in result["goals"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
