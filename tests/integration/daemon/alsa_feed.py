"""A simulated microphone for the real daemon: real libasound's `file` plugin reading a FIFO
that a test thread writes, with the fault shim (LD_PRELOAD) pacing reads to real time and
injecting faults at chosen read/open numbers.

Why a FIFO: the plugin reads it like a file, but only what the test wrote, so nothing past
the end is ever read as audio (after a regular file's end the plugin hands out garbage). The
shim paces the reads to real time and numbers them: read N comes N x 20 ms after the open,
which is how a test puts a fault after it started an encounter. Every byte read from the
pipe is one frame of the timeline, in order (an overrun the shim injects reads and discards
its lost frames from the pipe), so a frame's stream position equals its timeline position
and recordings can be checked byte for byte.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
ALSA_CONF = ROOT / "tests" / "support" / "alsa" / "fakemic.conf"
SHIM_SOURCE = ROOT / "tests" / "support" / "alsa_shim" / "alsa_fault_shim.c"
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
RATE = 16000
PERIOD_FRAMES = 320  # audio.period_ms = 20 at 16 kHz: one snd_pcm_readi
FRAME_BYTES = 2  # S16_LE mono


def build_shim(out: Path) -> Path:
    """Compile the fault shim (as the audio tests do) into `out`."""
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SHIM_SOURCE),
         "-ldl", "-lasound"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


def mic_env(shim: Path, shim_log: Path, **faults: str) -> dict[str, str]:
    """The daemon's extra environment: our PCM definitions after the system's, the shim
    pacing reads (SHIM_PACE), its log, and the faults (SHIM_* variables)."""
    return {
        "ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{ALSA_CONF}",
        "LD_PRELOAD": str(shim),
        "SHIM_LOG": str(shim_log),
        "SHIM_PACE": "1",
        **faults,
    }


def mic_audio(seconds: float, seed: int = 11) -> bytes:
    """Known, clearly non-silent samples (noise plus a tone), well inside full scale."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    tone = 3000 * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)
    samples = tone + rng.normal(0, 1500, n)
    return np.clip(samples, -20000, 20000).astype("<i2").tobytes()


def shim_events(log: Path) -> list[tuple[str, float]]:
    """The shim's log as (line without the time, CLOCK_MONOTONIC time)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        text, _, t = line.rpartition(" t=")
        out.append((text, float(t)))
    return out


class MicFeed:
    """Writes `audio` into `fifo`, one period per write, as fast as the pipe takes it (the
    shim paces the daemon's reads to real time, so the 64 KiB pipe is the mic's buffer).

    The feed holds the FIFO open for reading and writing itself: the plugin's open of the
    FIFO then never blocks (it would block the daemon whole: pyalsaaudio keeps the GIL in
    snd_pcm_open), and a re-open after an unplug continues with the next bytes.
    """

    def __init__(self, fifo: Path, audio: bytes) -> None:
        self.fifo = fifo
        self.audio = audio
        self.written = 0  # bytes put into the pipe
        self._stop = threading.Event()
        os.mkfifo(fifo)
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="mic-feed", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)

    def _run(self) -> None:
        step = PERIOD_FRAMES * FRAME_BYTES  # <= PIPE_BUF: every write is atomic
        while not self._stop.is_set() and self.written < len(self.audio):
            _, ready, _ = select.select([], [self._fd], [], 0.05)
            if ready:
                try:
                    self.written += os.write(
                        self._fd, self.audio[self.written : self.written + step]
                    )
                except BlockingIOError:
                    continue
