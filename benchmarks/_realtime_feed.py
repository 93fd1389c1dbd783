"""A paced multichannel "microphone" for bench_realtime: array-like speech in a profile's
native capture format, written into a FIFO one period at a time at its wall-clock due time.

Why a FIFO read through libasound's `file` plugin (the project's test PCM,
tests/support/alsa/fakemic.conf, opened as `fakemic:<fifo>`): the daemon and `arecord` then
capture through real libasound in their native format, and a blocking read returns when the
pacer has written the period, as it would when a sound card's DMA filled it. The pipe is the
sound card's ring buffer: the pacer never lets it hold more than `buffer_periods` periods (a
period that would not fit is dropped and counted, as an ALSA overrun would lose it), so a
consumer that starts late or stalls sees what it would see on hardware, and writes never
split a frame (the pipe is enlarged so a whole buffer fits; a period is written whole or
not at all).
"""

from __future__ import annotations

import fcntl
import math
import os
import select
import struct
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

ROOT = Path(__file__).resolve().parents[1]
FAKEMIC_CONF = ROOT / "tests" / "support" / "alsa" / "fakemic.conf"
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
SPEECH_RATE = 16000
SAMPLE_BYTES = {"S16_LE": 2, "S24_LE": 4, "S32_LE": 4}  # S24_LE: 24 bits in a 32-bit slot
FULL_SCALE = {"S16_LE": 2**15 - 1, "S24_LE": 2**23 - 1, "S32_LE": 2**31 - 1}
NUMPY_TYPE = {"S16_LE": "<i2", "S24_LE": "<i4", "S32_LE": "<i4"}
SPEED_OF_SOUND_MM_PER_S = 343_000.0
NOISE_DBFS = -66.0  # each mic's own self-noise: a quiet room, never digital silence
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), spelled out for older Pythons
PIPE_MAX = 1 << 20  # /proc/sys/fs/pipe-max-size's default


@dataclass(frozen=True)
class NativeFormat:
    """A hardware profile's capture format and its mono mix (the floor mixes the same way)."""

    rate: int
    channels: int
    format: str
    mix_weights: tuple[float, ...] = ()
    mic_positions_mm: tuple[tuple[float, float, float], ...] = ()

    @classmethod
    def of_profile(cls, audio: dict[str, Any]) -> NativeFormat:
        """From a profile's `[audio]` table (defaults as AudioConfig has them)."""
        return cls(
            rate=int(audio.get("rate", 16000)),
            channels=int(audio.get("channels", 1)),
            format=str(audio.get("format", "S16_LE")),
            mix_weights=tuple(float(w) for w in audio.get("mix_weights", ())),
            mic_positions_mm=tuple(
                (float(x), float(y), float(z)) for x, y, z in audio.get("mic_positions_mm", ())
            ),
        )

    @property
    def frame_bytes(self) -> int:
        return self.channels * SAMPLE_BYTES[self.format]

    @property
    def weights(self) -> tuple[float, ...]:
        """The mono mix: the profile's weights, or an equal mix (the daemon's default)."""
        return self.mix_weights or (1.0 / self.channels,) * self.channels

    def period_frames(self, period_ms: int) -> int:
        return self.rate * period_ms // 1000

    def label(self) -> str:
        return f"{self.channels} ch {self.rate // 1000} kHz {self.format}"


def alsa_env() -> dict[str, str]:
    """A consumer's environment: the project's test PCMs after the system's (first)."""
    return {"ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{FAKEMIC_CONF}"}


def device_name(fifo: Path) -> str:
    """The ALSA PCM that reads `fifo` through the `file` plugin."""
    return f"fakemic:{fifo}"


def channel_delays(fmt: NativeFormat, azimuth_deg: float = 30.0) -> list[int]:
    """Per-channel arrival delay in samples of a far talker at `azimuth_deg`, from the mic
    positions (a plane wave); channels without a position (loopbacks, unknown geometry) get a
    small fixed spread so no two channels are identical."""
    if not fmt.mic_positions_mm:
        return [c % 3 for c in range(fmt.channels)]
    ux, uy = math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    lead = [-(x * ux + y * uy) / SPEED_OF_SOUND_MM_PER_S for x, y, _z in fmt.mic_positions_mm]
    first = min(lead)
    delays = [round((t - first) * fmt.rate) for t in lead]
    return delays + [c % 3 for c in range(len(delays), fmt.channels)]


def array_audio(mono: npt.NDArray[np.float32], fmt: NativeFormat, seed: int = 5) -> bytes:
    """16 kHz mono speech as the array would capture it: at its rate, each channel delayed
    (geometry) and at its own gain (0.7-1.0: mic sensitivity spread), each with its own
    self-noise, interleaved in its sample format."""
    rng = np.random.default_rng(seed)
    audio = mono if fmt.rate == SPEECH_RATE else soxr.resample(mono, SPEECH_RATE, fmt.rate)
    audio = np.asarray(audio, np.float64)
    delays = channel_delays(fmt)
    pad = max(delays)
    out = np.empty((audio.size, fmt.channels), np.float64)
    noise = 10 ** (NOISE_DBFS / 20)
    for c, delay in enumerate(delays):
        shifted = np.concatenate([np.zeros(delay), audio, np.zeros(pad - delay)])[: audio.size]
        out[:, c] = shifted * rng.uniform(0.7, 1.0) + rng.normal(0, noise, audio.size)
    scaled = np.clip(out, -1.0, 1.0) * FULL_SCALE[fmt.format]
    return np.round(scaled).astype(NUMPY_TYPE[fmt.format]).tobytes()


def due_periods(elapsed_s: float, period_s: float) -> int:
    """How many periods are due `elapsed_s` after the start: period k (from 0) is complete,
    so due, at (k + 1) x period_s (a sound card hands a period over once it is full)."""
    if elapsed_s < 0:
        return 0
    return math.floor(elapsed_s / period_s + 1e-9)


def fits(queued_bytes: int, period_bytes: int, buffer_periods: int) -> bool:
    """Whether one more period fits in a ring buffer of `buffer_periods` periods."""
    return queued_bytes + period_bytes <= buffer_periods * period_bytes


class Pacer:
    """Writes `audio` (looped) into a fresh FIFO at `fifo`, one period at its due time.

    The pacer holds the FIFO open for reading and writing itself, so the consumer's open never
    blocks and a re-open continues with the next period. `written` and `dropped` count periods
    (dropped: the ring buffer was full, an overrun)."""

    def __init__(
        self, fifo: Path, audio: bytes, fmt: NativeFormat, period_ms: int, buffer_periods: int
    ) -> None:
        self.fifo = fifo
        self.period_bytes = fmt.period_frames(period_ms) * fmt.frame_bytes
        self.period_s = fmt.period_frames(period_ms) / fmt.rate
        self.buffer_periods = buffer_periods
        usable = len(audio) - len(audio) % self.period_bytes
        self._audio = audio[:usable] + audio[: self.period_bytes]  # a period may wrap round
        self._usable = usable
        self.written = 0
        self.dropped = 0
        self.late_max_s = 0.0  # the latest a period was written after its due time
        self._stop = threading.Event()
        os.mkfifo(fifo)
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        fcntl.fcntl(self._fd, F_SETPIPE_SZ, self._pipe_size())
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"pacer-{fifo.name}", daemon=True)
        self._thread.start()

    def _pipe_size(self) -> int:
        """Room for the ring buffer plus slack: a pipe's capacity counts pages, and a
        partly read page still takes a whole one (1 MiB is the unprivileged maximum)."""
        need = self.period_bytes * (self.buffer_periods + 2) + 4096 * 4 * self.buffer_periods
        if need > PIPE_MAX:
            raise ValueError(f"{self.buffer_periods} x {self.period_bytes} B: pipe too small")
        return PIPE_MAX

    def counters(self) -> tuple[int, int]:
        return self.written, self.dropped

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)

    def _queued(self) -> int:
        raw = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def _write(self, data: bytes) -> None:
        """The whole period (it fits: checked): a short write would split a frame."""
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                select.select([], [self._fd], [], 0.05)

    def _run(self) -> None:
        done = 0
        while not self._stop.is_set():
            now = time.monotonic()
            due = due_periods(now - self.t0, self.period_s)
            while done < due:
                self.late_max_s = max(self.late_max_s, now - (self.t0 + (done + 1) * self.period_s))
                if fits(self._queued(), self.period_bytes, self.buffer_periods):
                    start = (done * self.period_bytes) % self._usable
                    self._write(self._audio[start : start + self.period_bytes])
                    self.written += 1
                else:
                    self.dropped += 1
                done += 1
            next_due = self.t0 + (done + 1) * self.period_s
            self._stop.wait(max(0.0, next_due - time.monotonic()))  # pacing, not syncing
