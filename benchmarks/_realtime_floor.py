"""The "C floor" of bench_realtime and the per-process counters it and the daemon are read by.

The floor is the least any capture-and-stream device can do with the same input: `arecord`
captures the same PCM (libasound's `file` plugin on a FIFO the same pacer fills, same period
and buffer), `ffmpeg` mixes to mono with the profile's weights, resamples to 16 kHz with
soxr, converts to s16le and writes it to a TCP socket whose reader (here, a thread of the
benchmark, not counted) discards it. No VAD, no spool, no encryption, no protocol: the daemon
does more, so the ratio daemon / floor says what that costs.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._daemon import cpu_seconds
from benchmarks._realtime_feed import NativeFormat
from edge_recorder.dashboard.broker import die_with_parent

OUTPUT_RATE = 16000
FFMPEG_INPUT = {"S16_LE": "s16le", "S24_LE": "s32le", "S32_LE": "s32le"}  # S24 in 32-bit slots


@dataclass(frozen=True)
class Counters:
    """What /proc says of a set of processes at one moment (summed over them)."""

    cpu_s: float  # on-CPU time of the live threads, ns resolution (schedstat)
    tick_cpu_s: float  # utime + stime, whole clock ticks (includes exited threads)
    ctxt: int  # voluntary + involuntary context switches
    hwm_kb: int  # peak RSS (VmHWM), summed: the processes run together


def _status_of(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a child the daemon starts is its cost too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _tasks(pid: int) -> tuple[float, int]:
    """(on-CPU seconds, context switches) summed over the process's live threads.

    On-CPU time is the first field of each /proc/<pid>/task/<tid>/schedstat, in ns: utime +
    stime count whole ticks (10 ms at CLK_TCK = 100), too coarse for a floor that uses ~0.1 %
    of a core over 15 s. Context switches (voluntary + involuntary) come from each thread's
    status: /proc/<pid>/status has the main thread's only."""
    run_ns, switches = 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError, KeyError):
            ns = int(task.joinpath("schedstat").read_text().split()[0])
            status = _status_of(task / "status")
            n = int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
            run_ns, switches = run_ns + ns, switches + n
    return run_ns / 1e9, switches


def counters(pids: list[int]) -> Counters:
    """Summed CPU seconds, context switches and peak RSS of `pids` (gone ones are skipped).
    Threads that exit inside a window lose their schedstat time (the tick figure keeps it)."""
    cpu, ticks, ctxt, hwm = 0.0, 0.0, 0, 0
    for pid in pids:
        with contextlib.suppress(OSError, KeyError, ValueError):
            peak = int(_status_of(Path(f"/proc/{pid}/status"))["VmHWM"].split()[0])
            cpu_ticks = cpu_seconds(pid)
            run_s, switches = _tasks(pid)
            cpu, ticks, ctxt, hwm = cpu + run_s, ticks + cpu_ticks, ctxt + switches, hwm + peak
    return Counters(cpu, ticks, ctxt, hwm)


def pan_filter(fmt: NativeFormat) -> str:
    """ffmpeg's `pan` for the profile's mono mix (zero-weight channels left out)."""
    terms = [f"{w:g}*c{c}" for c, w in enumerate(fmt.weights) if w]
    return "pan=mono|c0=" + "+".join(terms)


def floor_commands(
    fmt: NativeFormat, device: str, port: int, period_ms: int, buffer_periods: int
) -> tuple[list[str], list[str]]:
    """(arecord argv, ffmpeg argv): capture like the daemon does, mix, soxr, s16le to TCP."""
    period_us = period_ms * 1000
    arecord = [
        "arecord", "-q", "-D", device, "-t", "raw", "-f", fmt.format,
        "-c", str(fmt.channels), "-r", str(fmt.rate),
        f"--period-time={period_us}", f"--buffer-time={period_us * buffer_periods}",
    ]  # fmt: skip
    ffmpeg = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-f", FFMPEG_INPUT[fmt.format], "-ar", str(fmt.rate), "-ac", str(fmt.channels),
        "-i", "pipe:0",
        "-af", f"{pan_filter(fmt)},aresample={OUTPUT_RATE}:resampler=soxr",
        "-acodec", "pcm_s16le", "-f", "s16le", f"tcp://127.0.0.1:{port}",
    ]  # fmt: skip
    return arecord, ffmpeg


class TcpSink:
    """A local TCP server that takes one connection and discards what arrives (counted)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.received = 0
        self._thread = threading.Thread(target=self._run, name="floor-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            connection, _ = self._server.accept()
            with connection:
                while data := connection.recv(65536):
                    self.received += len(data)

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)


class Floor:
    """`arecord | ffmpeg` on `device`, streaming to a TcpSink; stop with close()."""

    def __init__(
        self,
        fmt: NativeFormat,
        device: str,
        env: dict[str, str],
        log: Path,
        period_ms: int,
        buffer_periods: int,
    ) -> None:
        self.sink = TcpSink()
        arecord, ffmpeg = floor_commands(fmt, device, self.sink.port, period_ms, buffer_periods)
        self._log = log.open("ab")
        detach: dict[str, Any] = {  # own session, and gone if the benchmark is killed
            "env": env, "stderr": self._log, "start_new_session": True,
            "preexec_fn": die_with_parent,
        }  # fmt: skip
        self.capture = subprocess.Popen(arecord, stdout=subprocess.PIPE, **detach)
        self.encoder = subprocess.Popen(ffmpeg, stdin=self.capture.stdout, **detach)
        assert self.capture.stdout is not None
        self.capture.stdout.close()  # ffmpeg holds the pipe now

    @property
    def pids(self) -> list[int]:
        return [self.capture.pid, self.encoder.pid]

    def close(self) -> None:
        """arecord first (ffmpeg then sees the end of its input and flushes), then the rest."""
        for proc in (self.capture, self.encoder):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.sink.close()
        self._log.close()
