"""The running daemon while recording and streaming live: CPU, peak RSS, device-added latency.

Set-up (all on loopback, nothing faked inside the daemon): the real `edge-recorder run` as a
child process, its microphone a 16 kHz espeak-ng conversation played at real time (the WAV
source releases each 20 ms period when it would have been captured, like ALSA; the capture
thread asks for a chunk at a time, released when its last period is due), default
encoding (PCM16, 120 ms chunks), MQTT on (mosquitto), mock GPIO, live gRPC delivery to the
AAS emulator, which runs in *this* process so none of its work is charged to the daemon.
Each case gets a fresh daemon (and a fresh emulator and broker).

CPU % of one core: (utime + stime) of the daemon process (all its threads) from
/proc/<pid>/stat over the measuring window divided by the window's wall time; the window
starts 2 s after the recording opened (model loads and stream set-up excluded) and lasts
60 s (15 s with --quick). Peak RSS: VmHWM from /proc/<pid>/status at the end (includes
start-up, so it is the honest peak).

Device-added latency, sound to bytes confirmed by the service:
- when a sample was taken: the WAV source models a sound card: its pacer releases block k
  (frames [k*n, (k+1)*n)) at `t0 + (k+1)*n/rate`, so frame `f` was "sampled" at
  `t0 + f/rate`, where `t0` is when the source started; the daemon logs "audio source
  started" right after starting it (its logfmt `ts`, wall clock, 1 ms resolution), and
  "recording audio closed" gives the recording's first source frame `start_frame`. With a
  16 kHz mono source and PCM16, byte offset B of the recording is frame `start_frame + B/2`;
- when the service held it: the emulator's store is wrapped here so every DataChunk it
  stores is timestamped (wall clock) with the bytes it then holds; the ack goes out right
  after.
Two figures per stored message: its *newest* sample (sampled as its period ended: what the
device adds once audio is captured: pipeline, spool append, delivery, gRPC, loopback) and its
*oldest* sample (sampled right after the previous message's last one: it also waited for its
period to be captured and for its `encoding.chunk_ms` chunk to fill). The goal (p95 <=
150 ms) is checked against the oldest sample, the worst any sample sees. Both clocks are this
host's wall clock; the first second of streaming is excluded. Cases: Silero (default),
WebRTC, Silero with `audio.period_ms = 20` (on a real ALSA device the period sets how often
the capture thread wakes; here the WAV source already hands over a chunk per wake-up, so it
only changes the file reads), Silero with 100 ms chunks and periods (the message-size lever:
every live message costs a spool notify, a gRPC write and its acknowledgement, each a thread
wake-up), Silero on onnxruntime, and the 4-mic and 6-mic HATs as their profiles ship (the speech
as the board's array hears it, in its channel count and sample format: the beam on, 80 ms
periods; the latency and RSS goals apply to them, the CPU goal is the mono default's).

Alone: `python -m benchmarks.bench_daemon [--case N] [--seconds S] [--probe CMD]
[--daemon-env K=V]` prints one JSON object per case, with the CPU % of each thread
(`threads_pct`, by OS thread name/id); `--probe` runs a command over the measuring window
with {pid} and {seconds} filled in (e.g. `py-spy record ... --pid {pid}` or
`strace -f -c -p {pid}`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import tempfile
import time
from calendar import timegm
from pathlib import Path
from typing import Any

from benchmarks._daemon import (
    cpu_seconds,
    start_daemon,
    start_probe,
    start_rig,
    status_kb,
    thread_cpu_seconds,
)
from devtools.demo.services import ControlClient, write_toml
from devtools.demo.speech import speech_wav

# The emulator's gRPC server lives in this process while it forks the daemon: gRPC's fork
# handlers are not needed (the child execs at once) and would only log a warning.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

RATE = 16000
SETTLE_S = 2.0
DAEMON_ENV: dict[str, str] = {}  # extra environment for the daemon (main's --daemon-env)
GOALS = {"cpu_pct": 3.0, "rss_mb": 120.0, "latency_p95_ms": 150.0}
_TS = re.compile(r"^ts=(\S+)Z .*msg=\"audio source started\"", re.MULTILINE)
_CLOSED = re.compile(r'msg="recording audio closed" recording_id=(\S+) .*start_frame=(\d+)')


def _wall(ts: str) -> float:
    """logfmt `ts=2026-11-21T00:48:06.123` (UTC) → epoch seconds."""
    head, _, millis = ts.partition(".")
    return timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(
    engine: str,
    seconds: float,
    wav: Path,
    tmp: Path,
    *,
    record: bool = True,
    mqtt: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
    profile: str | None = None,
    probe: str | None = None,
) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=tmp))
    async with contextlib.AsyncExitStack() as stack:
        rig = await start_rig(stack, run_dir, "bench-room", mqtt=mqtt)
        short, tree = rig.short, rig.tree
        stored = _timestamp_writes(rig.emulator)
        tree.update(
            audio={"source": "wav", "wav_path": str(wav), "speed": 1.0}
            | ({"profile": profile} if profile else {}),
            vad={"engine": engine},
        )
        for section, values in (overrides or {}).items():
            tree.setdefault(section, {}).update(values)
        config = write_toml(run_dir / "device.toml", tree)
        log = run_dir / "daemon.log"
        daemon = await start_daemon(stack, config, short, log, DAEMON_ENV)
        control = ControlClient(short / "ctl.sock")
        if record:
            await control.ok({"cmd": "start"})
            await control.wait_for(lambda s: s["state"] == "recording", 10, "recording")
        await asyncio.sleep(SETTLE_S)  # measuring window starts after the stream is set up
        threads0 = thread_cpu_seconds(daemon.pid)
        prober = start_probe(probe, daemon.pid, seconds) if probe else None
        cpu0, wall0 = cpu_seconds(daemon.pid), time.monotonic()
        await asyncio.sleep(seconds)  # the measuring window itself
        cpu1, wall1 = cpu_seconds(daemon.pid), time.monotonic()
        threads1 = thread_cpu_seconds(daemon.pid)
        if prober is not None:
            prober.wait()
        hwm_kb, rss_kb = status_kb(daemon.pid, "VmHWM"), status_kb(daemon.pid, "VmRSS")
        if record:
            await control.ok({"cmd": "stop"})
            await control.wait_for(lambda s: s["state"] == "idle", 15, "idle")
    return {
        "engine": engine,
        "recording": record,
        "mqtt": mqtt,
        "window_s": round(wall1 - wall0, 1),
        "cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "rss_mb": round(hwm_kb / 1024, 1),
        "rss_end_mb": round(rss_kb / 1024, 1),
        "threads_pct": {
            name: round(100 * (cpu - threads0.get(name, 0.0)) / (wall1 - wall0), 2)
            for name, cpu in sorted(threads1.items(), key=lambda kv: -kv[1])
            if cpu - threads0.get(name, 0.0) > 0
        },
        **(_latency(log.read_text(errors="replace"), stored) if record else {}),
    }


def _timestamp_writes(emulator: Any) -> list[tuple[float, str, int]]:
    """Wrap the emulator's store: every stored DataChunk → (wall time, recording, bytes held)."""
    stored: list[tuple[float, str, int]] = []
    original = emulator.ctx.store.write

    def timed_write(cid: str, key: str, offset: int, data: bytes) -> int:
        held: int = original(cid, key, offset, data)
        stored.append((time.time(), key, held))
        return held

    emulator.ctx.store.write = timed_write
    return stored


def _latency(log_text: str, stored: list[tuple[float, str, int]]) -> dict[str, Any]:
    """Per stored message: the latency of its newest sample (sampled as its period ended) and
    of its oldest one (sampled right after the previous message's last sample; it waited for
    its period to be captured and its chunk to fill)."""
    started = _TS.findall(log_text)
    closed = _CLOSED.search(log_text)
    if len(started) != 1 or closed is None:
        return {"latency_error": "source restarted or recording not closed; see daemon.log"}
    t0, rid, start_frame = _wall(started[0]), closed[1], int(closed[2])
    mine = [(at, held) for at, key, held in stored if key == rid]
    if not mine:
        return {"latency_error": "the service stored nothing of the recording"}

    def sampled(offset: int) -> float:  # when the sample starting at byte `offset` was taken
        return t0 + (start_frame + offset // 2) / RATE

    newest, oldest = [], []
    first, previous = mine[0][0], 0
    for at, held in mine:
        if at - first >= 1.0:
            newest.append((at - sampled(held)) * 1000)
            oldest.append((at - sampled(previous)) * 1000)
        previous = held
    return {
        "latency_p50_ms": round(statistics.median(newest), 1),
        "latency_p95_ms": round(_percentile(newest, 0.95), 1),
        "latency_max_ms": round(max(newest), 1),
        "latency_min_ms": round(min(newest), 1),
        "oldest_sample_p50_ms": round(statistics.median(oldest), 1),
        "oldest_sample_p95_ms": round(_percentile(oldest, 0.95), 1),
        "chunks": len(newest),
    }


# (label, VAD engine, config overrides, hardware profile or None for the mono WAV): the
# default, the cheaper VAD, the period lever, the message-size lever (each live message has a
# fixed cost: 100 ms chunks are 20 % more), and the array HATs as their profiles ship (beam on)
CASES: tuple[tuple[str, str, dict[str, dict[str, Any]], str | None], ...] = (
    ("silero (default)", "silero", {}, None),
    ("webrtc", "webrtc", {}, None),
    (
        "silero, audio.period_ms = 20",
        "silero",
        {"audio": {"period_ms": 20}, "encoding": {"chunk_ms": 120}},
        None,
    ),
    (
        "silero, 100 ms chunks and periods",
        "silero",
        {"encoding": {"chunk_ms": 100}, "audio": {"period_ms": 100}},
        None,
    ),
    ("silero on onnxruntime", "silero", {"vad": {"silero_backend": "onnxruntime"}}, None),
    ("respeaker-4mic-array profile", "silero", {}, "respeaker-4mic-array"),
    ("respeaker-6mic-array profile", "silero", {}, "respeaker-6mic-array"),
)
SHIPPED = (
    "silero (default)",
    "webrtc",
    "respeaker-4mic-array profile",
    "respeaker-6mic-array profile",
)


def profile_wav(mono_wav: Path, profile: str) -> Path:
    """The speech as `profile`'s array captures it (its channels and sample format, each mic
    delayed by the geometry; see benchmarks/_realtime_feed.array_audio), at 16 kHz: every
    array HAT's native rate, so byte offsets map to source frames as for the mono WAV."""
    import numpy as np
    import soundfile

    from benchmarks._realtime_feed import NUMPY_TYPE, SAMPLE_BYTES, NativeFormat, array_audio
    from edge_recorder.config.hardware import all_profiles

    fmt = NativeFormat.of_profile(all_profiles()[profile].audio)
    if fmt.rate != RATE:
        raise ValueError(f"{profile}: the latency arithmetic needs a {RATE} Hz profile")
    target = mono_wav.with_name(f"{mono_wav.stem}-{profile}.wav")
    if not target.exists():
        mono, _ = soundfile.read(str(mono_wav), dtype="float32")
        data = np.frombuffer(array_audio(mono, fmt), NUMPY_TYPE[fmt.format])
        subtype = "PCM_16" if SAMPLE_BYTES[fmt.format] == 2 else "PCM_32"
        soundfile.write(str(target), data.reshape(-1, fmt.channels), RATE, subtype=subtype)
    return target


def run(quick: bool) -> dict[str, Any]:
    seconds = 15.0 if quick else 60.0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as name:
        tmp = Path(name)
        wav = speech_wav(tmp / "speech", min_seconds=seconds + 40)
        for label, engine, overrides, profile in CASES:
            source = profile_wav(wav, profile) if profile else wav
            result = asyncio.run(
                _measure(engine, seconds, source, tmp, overrides=overrides, profile=profile)
            )
            results.append({"case": label, **result})
    rows = [
        [
            r["case"],
            r["cpu_pct"],
            r["rss_mb"],
            f"{r.get('latency_p50_ms', '-')} / {r.get('latency_p95_ms', '-')}",
            f"{r.get('oldest_sample_p50_ms', '-')} / {r.get('oldest_sample_p95_ms', '-')}",
            r.get("chunks", r.get("latency_error", "-")),
        ]
        for r in results
    ]
    goals = []
    for r in (r for r in results if r["case"] in SHIPPED):  # as shipped: both VADs, the HATs
        checks = [
            ("rss_mb", "peak RSS MB", GOALS["rss_mb"]),
            ("oldest_sample_p95_ms", "latency p95 ms (oldest sample)", GOALS["latency_p95_ms"]),
        ]
        if "profile" not in r["case"]:  # the CPU goal is the mono default's; a beam has its own
            checks.insert(0, ("cpu_pct", "CPU % of one core", GOALS["cpu_pct"]))  # (bench_farfield)
        for key, label, limit in checks:
            value = r.get(key)
            met = isinstance(value, int | float) and value <= limit
            goals.append({"goal": f"{r['case']}: {label} <= {limit:g}", "value": value, "met": met})
    return {
        "title": f"Daemon recording + streaming live for {seconds:g} s "
        "(real time, loopback emulator, MQTT on)",
        "columns": [
            "case",
            "CPU % of one core",
            "peak RSS MB",
            "latency p50 / p95 ms (chunk's newest sample)",
            "latency p50 / p95 ms (oldest sample)",
            "chunks",
        ],
        "rows": rows,
        "goals": goals,
        "detail": {"results": results, "loadavg": os.getloadavg(), "method": __doc__},
    }


def main() -> None:
    """`python -m benchmarks.bench_daemon [--case N] [--seconds S] [--probe CMD]`: one or more
    cases alone, JSON per case on stdout (per-thread CPU included)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    labels = ", ".join(f"{i}={label}" for i, (label, *_rest) in enumerate(CASES))
    parser.add_argument("--case", type=int, action="append", help=f"case index ({labels})")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument("--probe", help='command run over the window, e.g. "strace -f -c -p {pid}"')
    parser.add_argument(
        "--daemon-env", action="append", default=[], help="KEY=VALUE for the daemon only"
    )
    args = parser.parse_args()
    DAEMON_ENV.update(item.split("=", 1) for item in args.daemon_env)
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as name:
        tmp = Path(name)
        wav = speech_wav(tmp / "speech", min_seconds=args.seconds + 40)
        for index in args.case or range(len(CASES)):
            label, engine, overrides, profile = CASES[index]
            source = profile_wav(wav, profile) if profile else wav
            result = asyncio.run(
                _measure(
                    engine,
                    args.seconds,
                    source,
                    tmp,
                    overrides=overrides,
                    profile=profile,
                    probe=args.probe,
                )
            )
            print(json.dumps({"case": label, **result}, indent=1), flush=True)


if __name__ == "__main__":
    main()
