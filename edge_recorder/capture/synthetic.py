"""A generated microphone for smoke tests and the demo: speech-like bursts over a noise floor.

Deterministic for a given seed, so a test can know exactly where the "speech" is
(`speech_segments`). Bursts are voiced-sounding tones (a glottal-like harmonic series with a
syllable-rate envelope, about -25 dBFS RMS) separated by pauses of low white noise
(about -60 dBFS). Paced like the WAV source: `speed` x real time, 0 = as fast as read.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.frames import AudioFormat, EndOfStream, Frames, SourceEvent
from edge_recorder.capture.base import CaptureStats, Pacer, period_frames
from edge_recorder.capture.wav import to_alsa_bytes

_SPEECH_PEAK = 0.3  # linear full-scale amplitude of the burst envelope's peak
_NOISE_RMS = 0.001  # about -60 dBFS
_FULL_SCALE = {"S16_LE": 2**15 - 1, "S24_LE": 2**31 - 256, "S32_LE": 2**31 - 1}


class SyntheticSource:
    """Speech-like bursts and pauses in any capture format; endless unless `duration_s`."""

    def __init__(
        self,
        fmt: AudioFormat,
        *,
        speed: float = 1.0,
        period_ms: int = 20,
        duration_s: float | None = None,
        seed: int = 1234,
        lead_silence_s: float = 0.5,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._format = fmt
        self._block = period_frames(fmt.rate, period_ms)
        self._pacer = Pacer(self._block / fmt.rate, speed)
        self._schedule_rng = np.random.default_rng(seed)
        self._noise_rng = np.random.default_rng(seed + 1)
        self._total = None if duration_s is None else round(duration_s * fmt.rate)
        self._position = 0
        self._index = 0
        self._segments: list[tuple[float, float, float]] = []  # (start_s, end_s, f0)
        self._scheduled_until = lead_silence_s
        self.stats = CaptureStats()

    @property
    def format(self) -> AudioFormat:
        return self._format

    def speech_segments(self, until_s: float) -> list[tuple[float, float]]:
        """Ground truth: (start_s, end_s) of every burst that starts before `until_s`."""
        self._schedule(until_s)
        return [(start, end) for start, end, _ in self._segments if start < until_s]

    def _schedule(self, until_s: float) -> None:
        while self._scheduled_until <= until_s:
            length = float(self._schedule_rng.uniform(0.8, 2.5))
            pause = float(self._schedule_rng.uniform(0.4, 1.5))
            f0 = float(self._schedule_rng.uniform(100.0, 220.0))
            start = self._scheduled_until
            self._segments.append((start, start + length, f0))
            self._scheduled_until = start + length + pause

    def _mono(self, first: int, count: int) -> npt.NDArray[np.float64]:
        rate = self._format.rate
        t = (first + np.arange(count)) / rate
        self._schedule(float(t[-1]) + 1.0)
        out = np.zeros(count)
        nyquist = rate / 2
        for start, end, f0 in self._segments:
            if end <= t[0] or start > t[-1]:
                continue
            mask = (t >= start) & (t < end)
            tt = t[mask] - start
            # syllable envelope (~4 Hz) with a smooth onset and release
            envelope = np.abs(np.sin(np.pi * 4.0 * tt)) ** 0.5
            envelope *= np.clip(tt / 0.05, 0, 1) * np.clip((end - start - tt) / 0.05, 0, 1)
            # 3 Hz, 3 % vibrato; the phase is the analytic integral so blocks join smoothly
            phase = 2 * np.pi * f0 * tt - f0 * 0.03 / 3.0 * np.cos(2 * np.pi * 3.0 * tt)
            voiced = np.zeros(tt.shape)
            norm = 0.0
            for k in range(1, 16):
                if k * f0 >= nyquist:
                    break
                # a crude formant emphasis near 500 Hz and 1500 Hz
                gain = 1 / k + 0.6 * np.exp(-(((k * f0 - 500) / 200) ** 2))
                gain += 0.4 * np.exp(-(((k * f0 - 1500) / 300) ** 2))
                voiced += gain * np.sin(k * phase)
                norm += gain
            voiced /= norm
            out[mask] += _SPEECH_PEAK * envelope * voiced
        return out

    def _block_bytes(self, first: int, count: int) -> bytes:
        mono = self._mono(first, count)
        channels = self._format.channels
        noise = self._noise_rng.normal(0.0, _NOISE_RMS, size=(count, channels))
        signal = np.clip(mono[:, None] + noise, -1.0, 1.0)
        scale = _FULL_SCALE[self._format.sample_format]
        ints = np.round(signal * scale).astype(np.int64)
        if self._format.sample_format == "S24_LE":  # to_alsa_bytes expects left-aligned 24-bit
            ints = ints & ~0xFF
        return to_alsa_bytes(
            ints.astype(np.int32 if scale > 2**15 else np.int16), self._format.sample_format
        )

    def start(self) -> None:
        self._pacer.start()

    def read(self, timeout: float | None = None) -> Frames | SourceEvent | None:
        if self._pacer.stopped or (self._total is not None and self._position >= self._total):
            return EndOfStream(at_frame=self._position)
        if not self._pacer.wait_for_block(self._index, timeout):
            return None
        count = self._block
        if self._total is not None:
            count = min(count, self._total - self._position)
        frames = Frames(self._block_bytes(self._position, count), self._format, self._position)
        self._position += count
        self._index += 1
        self.stats.frames += count
        return frames

    def stop(self) -> None:
        self._pacer.stop()
