"""The daemon on realistic input, against a floor: native multichannel formats at real time,
recording, idle, and idle with a backlog (issue #24).

Input: for each hardware profile (edge_recorder/config/profiles/*.toml), its native capture
format (rate, channels, sample format, mix weights, mic positions): espeak-ng speech
(benchmarks/_audio.py) spread over the channels as a far talker reaches an array (per-mic
delay from the profile's geometry, gain 0.7-1.0, own self-noise at -66 dBFS). The real
`edge-recorder run` captures it with `audio.source = "alsa"` through real libasound: the
project's test PCM `fakemic:<fifo>` (tests/support/alsa/fakemic.conf, loaded through
ALSA_CONFIG_PATH), whose `file` plugin reads a FIFO this benchmark fills at real time, one
capture period (audio.period_ms, default 120 ms) at its wall-clock due time, never holding
more than audio.buffer_periods (8) periods, as a sound card's ring buffer would (see
benchmarks/_realtime_feed.py). Mock GPIO, MQTT on (mosquitto), the AAS emulator in *this*
process (not charged to the daemon), a fresh daemon per case.

Cases:
- stream (every profile; --quick: two): recording with live gRPC to the emulator. In the same
  window the *floor* runs on the same input: `arecord` on its own FIFO paced the same way,
  piped to `ffmpeg` (mix with the profile's weights, soxr to 16 kHz, s16le over TCP to a
  local sink); see benchmarks/_realtime_floor.py. Both run at once: CPU time is per process,
  so each is charged only its own work.
- offline recording (the reference profile): `uplink.live = false` (delivered by REST after
  the recording closes, outside the window): capture, VAD, encoding and the spool only.
- idle (reference profile): the daemon running, not recording, service online. Capture,
  levels and VAD keep running between encounters, so the pacer keeps feeding.
- backlog-idle (reference profile): idle, the service unreachable (the emulator is stopped
  before the daemon starts: connections are refused), 2,000 closed 0.5 s recordings in the
  spool (written through the real Spool before the daemon starts).
- offline-idle (reference profile): backlog-idle with an empty spool, its yardstick (what
  being offline costs by itself: the probe for the service, the "cannot deliver" LED).
- period trade-off (full runs only): the reference stream again at 80 and 200 ms periods
  (chunks follow), around the default 120 ms; not checked against the floor goal, which is
  judged at the default.

Every case runs the profile's capture format with the plain channel mix at the default
120 ms period, as the floor does: the array profiles ship a beamformer (80 ms periods), whose
cost and latency bench_daemon (the HATs as shipped) and bench_farfield (the pipeline) measure.

Window: starts 2 s after the recording opened (5 s after READY for the idle cases: start-up
work such as the first delivery pass and the MQTT birth is excluded, the device runs 24/7)
and lasts 60 s (15 s with --quick). CPU-s per audio-s: CPU time over the window of the
daemon and its descendants (the floor: arecord + ffmpeg), divided by the window's wall time
(audio arrives at real time, so wall seconds are audio seconds). CPU time is read per thread
from /proc/<pid>/task/<tid>/schedstat (ns): utime + stime come in whole 10 ms ticks, which
over 15 s is +-70 % of the floor's ~0.001 CPU-s/s; the tick figure (`tick_cpu_per_s`, which
also keeps threads that exited in the window) is in the JSON as a cross-check. Context
switches/s: voluntary + involuntary, summed over threads (/proc/<pid>/task/*/status). Peak
RSS: VmHWM at the end (the floor: both processes summed).

Goals (issue #24): stream <= 2x the floor, per profile; idle <= 0.003 CPU-s/s (0.3 % of a
core) besides the mic watch, whose cost is reported (`mic_watch_cpu_per_s`: the capture
threads, named `alsa-capture` and `audio-worker` in the kernel, between recordings; the issue
allows "a feature that needs it ... mic-health meters at a low rate" and asks what it costs);
backlog-idle <= offline-idle + 10 %. A goal not met names (`why`) where its shortfall
is explained with profiler evidence. The margin is noise: three 15 s idle windows on a busy
2-core machine (load 4.5) read 0.0103, 0.0107 and 0.0105 CPU-s/s, a 4 % spread, and the
schedstat reading itself is exact to the ns; 10 % is twice the spread seen, while what a
backlog could cost (a pass over 2,000 recordings per retry or per status report) would show
as a multiple, not a few percent.

Alone: `python -m benchmarks.bench_realtime [--quick] [--case NAME] [--seconds S]
[--backlog N] [--daemon-env K=V] [--probe CMD] [--period-ms P]` prints one JSON object per
case (NAME: stream:<profile>, offline, idle, backlog-idle, offline-idle), with per-thread CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._audio import conversation
from benchmarks._daemon import start_daemon, start_probe, start_rig, thread_cpu_seconds
from benchmarks._realtime_feed import NativeFormat, Pacer, alsa_env, array_audio, device_name
from benchmarks._realtime_floor import Counters, Floor, counters, descendants
from devtools.demo.services import ControlClient, write_toml
from edge_recorder.config.hardware import all_profiles
from edge_recorder.config.model import AudioConfig, SpoolConfig
from edge_recorder.spool.fileops import OsFileOps

# The emulator's gRPC server lives in this process while it forks the daemon (see bench_daemon)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

SETTLE_S = 2.0
IDLE_SETTLE_S = 5.0
SPEECH_S = 45.0  # the speech loops; long enough that no window hears one utterance twice
BACKLOG = 2000
BACKLOG_BYTES = 16000  # 0.5 s of 16 kHz PCM16 each
REFERENCE = "respeaker-4mic-array"
QUICK_STREAM = (REFERENCE, "generic-usb-mic")  # a 4-ch array, and the 48 kHz resampling path
PERIOD_MS: int = AudioConfig.model_fields["period_ms"].default
BUFFER_PERIODS: int = AudioConfig.model_fields["buffer_periods"].default
GOALS = {"stream_over_floor": 2.0, "idle_cpu_per_s": 0.003, "backlog_margin": 0.10}
TRADE_OFF_PERIODS_MS = (80, 200)  # around the default: what a period (and chunk) costs
WHY = "docs/make-targets-and-benchmarks.md#realistic-input-bench_realtime-issue-24"
# The daemon's capture threads (kernel names, edge_recorder/support/threads.py): between
# recordings they are the mic watch (device lost/back, stall, levels), a feature issue #24's
# idle goal allows and asks to be costed
MIC_WATCH_THREADS = ("alsa-capture", "audio-worker")
DAEMON_ENV: dict[str, str] = {}


def profiles() -> dict[str, NativeFormat]:
    return {name: NativeFormat.of_profile(p.audio) for name, p in all_profiles().items()}


class _NoSync(OsFileOps):
    """The spool's file operations without fsync: filling the backlog is set-up, not what is
    measured, and 2,000 encounters x ~10 fsyncs would take minutes."""

    def fsync(self, fd: int) -> None:
        return None


def fill_spool(spool_section: dict[str, Any], count: int) -> float:
    """`count` closed 0.5 s recordings, one encounter each, through the real Spool; seconds.

    Without fsync (durability is not what is measured). Every change is saved as the daemon
    saves it (the ledger journal keeps that linear: 2,000 in ~18 s)."""
    from edge_recorder.spool import Spool

    started = time.monotonic()
    config = SpoolConfig.model_validate(spool_section)
    spool = Spool.open(config, environ={}, ops=_NoSync())
    try:
        payload = np.random.default_rng(3).integers(0, 256, BACKLOG_BYTES, np.uint8).tobytes()
        for n in range(count):
            cid = f"backlog-{n:05d}"
            writer = spool.begin_recording(cid, 1, str(uuid.uuid4()), codec="pcm16",
                                           sample_rate=16000)  # fmt: skip
            writer.append(payload)
            writer.close("stopped")
            spool.end_encounter(cid)
    finally:
        spool.close()
    return time.monotonic() - started


def per_s(before: Counters, after: Counters, wall: float) -> dict[str, float]:
    """CPU-s per audio-s, context switches per second, peak RSS MB over one window."""
    return {
        "cpu_per_s": round((after.cpu_s - before.cpu_s) / wall, 5),
        "tick_cpu_per_s": round((after.tick_cpu_s - before.tick_cpu_s) / wall, 4),
        "ctxt_per_s": round((after.ctxt - before.ctxt) / wall, 1),
        "rss_mb": round(after.hwm_kb / 1024, 1),
    }


async def measure(
    case: Case,
    fmt: NativeFormat,
    mono: np.ndarray,
    seconds: float,
    tmp: Path,
    probe: str | None = None,
) -> dict[str, Any]:
    """One case on a fresh daemon; `probe` is a command run over the window ({pid},
    {seconds}: e.g. py-spy, strace)."""
    kind, name, backlog, period_ms = case.kind, case.profile, case.backlog, case.period_ms
    record = kind in ("stream", "offline")
    run_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-{name}-", dir=tmp))
    audio = array_audio(mono, fmt)
    async with contextlib.AsyncExitStack() as stack:
        rig = await start_rig(stack, run_dir, "bench-room")
        short, tree = rig.short, rig.tree
        if kind == "backlog-idle":
            await rig.emulator.stop()  # offline: its ports now refuse connections
        pacer = Pacer(short / "mic.fifo", audio, fmt, period_ms, BUFFER_PERIODS)
        stack.callback(pacer.close)
        # like for like with the floor: the plain mix, the pacer's period (the HAT profiles
        # ship a beam with 80 ms periods: bench_daemon and bench_farfield measure that)
        tree["audio"] = {
            "source": "alsa",
            "profile": name,
            "device": device_name(pacer.fifo),
            "array_processing": "average",
            "period_ms": period_ms,  # and so the chunk (encoding.chunk_ms follows it)
        }
        if kind == "offline":
            tree["uplink"]["live"] = False
        fill_s = fill_spool(tree["spool"], backlog) if kind == "backlog-idle" else None
        config = write_toml(run_dir / "device.toml", tree)
        env = {**alsa_env(), **DAEMON_ENV}
        daemon = await start_daemon(stack, config, short, run_dir / "daemon.log", env)
        control = ControlClient(short / "ctl.sock")
        floor = None
        if record:
            await control.ok({"cmd": "start"})
            await control.wait_for(lambda s: s["state"] == "recording", 10, "recording")
        if kind == "stream":
            floor_pacer = Pacer(short / "floor.fifo", audio, fmt, period_ms, BUFFER_PERIODS)
            stack.callback(floor_pacer.close)
            floor = Floor(fmt, device_name(floor_pacer.fifo), {**os.environ, **alsa_env()},
                          run_dir / "floor.log", period_ms, BUFFER_PERIODS)  # fmt: skip
            stack.callback(floor.close)
        await asyncio.sleep(SETTLE_S if record else IDLE_SETTLE_S)  # window starts after set-up
        pids = descendants(daemon.pid)
        threads0 = thread_cpu_seconds(daemon.pid)
        d0, f0 = counters(pids), counters(floor.pids) if floor else None
        p0, wall0 = pacer.counters(), time.monotonic()
        sunk0 = floor.sink.received if floor else 0
        prober = start_probe(probe, daemon.pid, seconds) if probe else None
        await asyncio.sleep(seconds)  # the measuring window itself
        d1, f1 = counters(pids), counters(floor.pids) if floor else None
        p1, wall = pacer.counters(), time.monotonic() - wall0
        threads1 = thread_cpu_seconds(daemon.pid)
        sunk = (floor.sink.received - sunk0) if floor else 0
        if prober is not None:
            prober.wait()
        if record:
            await control.ok({"cmd": "stop"})
            await control.wait_for(lambda s: s["state"] == "idle", 15, "idle")
    result: dict[str, Any] = {
        "case": case.label,
        "profile": name,
        "format": fmt.label(),
        "period_ms": period_ms,
        "window_s": round(wall, 1),
        **per_s(d0, d1, wall),
        "daemon_processes": len(pids),
        "periods_written": p1[0] - p0[0],
        "periods_dropped": p1[1] - p0[1],  # the daemon fell behind by a whole buffer
        "pacer_late_max_ms": round(pacer.late_max_s * 1000, 1),
        "threads_cpu_per_s": {  # which thread burns it (schedstat; live threads only)
            name: round((cpu - threads0.get(name, 0.0)) / wall, 5)
            for name, cpu in sorted(threads1.items(), key=lambda kv: -kv[1])
            if cpu - threads0.get(name, 0.0) > 0
        },
    }
    if not record:  # between recordings the capture threads are the mic watch only
        watch = sum(
            cpu - threads0.get(name, 0.0)
            for name, cpu in threads1.items()
            if name.split("/", 1)[0] in MIC_WATCH_THREADS
        )
        result["mic_watch_cpu_per_s"] = round(watch / wall, 5)
    if f0 is not None and f1 is not None:
        floor_figures = per_s(f0, f1, wall)
        result["floor"] = {**floor_figures, "tcp_bytes_per_s": round(sunk / wall)}
        if floor_figures["cpu_per_s"] > 0:
            result["ratio"] = round(result["cpu_per_s"] / floor_figures["cpu_per_s"], 2)
    if fill_s is not None:
        result["backlog"] = {"recordings": backlog, "fill_s": round(fill_s, 1)}
    return result


@dataclass(frozen=True)
class Case:
    """One measured daemon: what it does, on which profile's input, with what backlog/period."""

    kind: str  # stream, offline, idle, backlog-idle
    profile: str
    backlog: int = BACKLOG
    period_ms: int = PERIOD_MS

    @property
    def label(self) -> str:
        if self.kind == "stream":
            period = "" if self.period_ms == PERIOD_MS else f" @ {self.period_ms} ms"
            return f"stream: {self.profile}{period}"
        if self.kind == "backlog-idle" and self.backlog == 0:
            return "offline-idle"  # the service offline, an empty spool: backlog-idle's yardstick
        return self.kind


def cases(quick: bool) -> list[Case]:
    """In run order: the streams, the reference profile's other cases, then (full runs) the
    period trade-off on the reference stream."""
    names = [n for n in profiles() if not quick or n in QUICK_STREAM]
    out = [Case("stream", n) for n in names]
    out += [Case(kind, REFERENCE) for kind in ("offline", "idle", "backlog-idle")]
    out.append(Case("backlog-idle", REFERENCE, backlog=0))
    if not quick:
        out += [Case("stream", REFERENCE, period_ms=p) for p in TRADE_OFF_PERIODS_MS]
    return out


def goals(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue #24 goals, checked against the figures (see the module docstring); a goal not
    met carries `why`: where its shortfall is explained with profiler evidence."""
    out = []
    for r in results:
        if r["case"].startswith("stream") and r["period_ms"] == PERIOD_MS:
            ratio = r.get("ratio")
            out.append({
                "goal": f"{r['profile']} ({r['format']}): recording + streaming <= "
                f"{GOALS['stream_over_floor']:g}x the ffmpeg floor",
                "value": ratio,
                "met": ratio is not None and ratio <= GOALS["stream_over_floor"],
                "why": WHY,
            })  # fmt: skip
    by_case = {r["case"]: r for r in results}
    idle, backlog = by_case.get("idle"), by_case.get("backlog-idle")
    offline = by_case.get("offline-idle")
    if idle is not None:
        limit = GOALS["idle_cpu_per_s"]
        watch = idle.get("mic_watch_cpu_per_s", 0.0)
        value = round(idle["cpu_per_s"] - watch, 5)
        out.append({
            "goal": f"idle <= {limit:g} CPU-s/s besides the mic watch (which costs {watch:g}; "
            f"{idle['cpu_per_s']:g} in all)",
            "value": value,
            "met": value <= limit,
            "why": WHY,
        })  # fmt: skip
    if offline is not None and backlog is not None:
        limit = round(offline["cpu_per_s"] * (1 + GOALS["backlog_margin"]), 5)
        value = backlog["cpu_per_s"]
        out.append({
            "goal": f"backlog-idle ({backlog['backlog']['recordings']} recordings, service "
            f"offline) <= offline-idle (empty spool) + 10 % = {limit:g} CPU-s/s",
            "value": value,
            "met": value <= limit,
            "why": WHY,
        })  # fmt: skip
    for goal in out:
        if goal["met"]:
            del goal["why"]
    return out


def _speech(seconds: float) -> np.ndarray:
    mono, _labels = conversation(seconds, seed=24)
    return mono


def run(quick: bool) -> dict[str, Any]:
    seconds = 15.0 if quick else 60.0
    formats = profiles()
    mono = _speech(SPEECH_S)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as name:
        for case in cases(quick):
            coro = measure(case, formats[case.profile], mono, seconds, Path(name))
            results.append(asyncio.run(coro))
    rows = []
    for r in results:
        floor = r.get("floor", {})
        rows.append([
            r["case"], r["format"], r["cpu_per_s"], floor.get("cpu_per_s", "-"),
            r.get("ratio", "-"), r["ctxt_per_s"], floor.get("ctxt_per_s", "-"),
            r.get("mic_watch_cpu_per_s", "-"), r["rss_mb"], floor.get("rss_mb", "-"),
            r["periods_dropped"],
        ])  # fmt: skip
    return {
        "title": f"Daemon on native-format input at real time, {seconds:g} s windows "
        "(ALSA file plugin on a paced FIFO; floor: arecord | ffmpeg mix + soxr -> TCP)",
        "columns": [
            "case",
            "input",
            "daemon CPU-s/s",
            "floor CPU-s/s",
            "daemon / floor",
            "daemon ctxsw/s",
            "floor ctxsw/s",
            "of which mic watch CPU-s/s",
            "daemon peak RSS MB",
            "floor peak RSS MB",
            "periods dropped",
        ],
        "rows": rows,
        "goals": goals(results),
        "detail": {"results": results, "loadavg": os.getloadavg(), "method": __doc__},
    }


def main() -> None:
    """`python -m benchmarks.bench_realtime [--quick] [--case NAME] [--seconds S]`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two stream profiles, 15 s")
    parser.add_argument("--case", action="append", help="stream:<profile>, offline, idle, ...")
    parser.add_argument("--seconds", type=float, help="measuring window (default 60, quick 15)")
    parser.add_argument("--daemon-env", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--backlog", type=int, help=f"recordings for backlog-idle ({BACKLOG})")
    parser.add_argument(
        "--probe", help='command run over each window, e.g. "py-spy record -p {pid} ..."'
    )
    parser.add_argument(
        "--period-ms",
        type=int,
        default=PERIOD_MS,
        help=f"capture period (and chunk) for the daemon and the floor ({PERIOD_MS})",
    )
    args = parser.parse_args()
    DAEMON_ENV.update(item.split("=", 1) for item in args.daemon_env)
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    formats = profiles()
    selected = cases(args.quick)
    if args.case:
        chosen = set(args.case)
        selected = [
            c for c in cases(False)
            if c.period_ms == PERIOD_MS and (f"{c.kind}:{c.profile}" in chosen or c.label in chosen)
        ]  # fmt: skip
    if args.backlog is not None:
        selected = [replace(c, backlog=args.backlog) for c in selected]
    if args.period_ms != PERIOD_MS:
        selected = [replace(c, period_ms=args.period_ms) for c in selected]
    mono = _speech(SPEECH_S)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as name:
        for case in selected:
            coro = measure(case, formats[case.profile], mono, seconds, Path(name), args.probe)
            result = asyncio.run(coro)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    print(json.dumps({"goals": goals(results)}, indent=1))


if __name__ == "__main__":
    main()
