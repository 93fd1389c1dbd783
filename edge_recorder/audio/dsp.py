"""Capture-format frames → 16 kHz mono float32: mix, resample, DC removal, gain, meters.

With `audio.array_processing` other than "average" the mix, resampling and DC removal are
the array stage's instead (`array.stage.ArrayMix`): per microphone, then a beamformer.

Every stage carries its state across calls, and every operation is chosen so that the result
does not depend on how the input was cut into blocks (elementwise numpy ops, soxr's streaming
resampler, a one-pole high-pass evaluated with sequential cumulative sums on a fixed grid):
processing a recording period by period gives the same samples, bit for bit, as processing it
in one piece. That makes the daemon, `record`, `analyze` and the benchmark agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from edge_recorder.audio.array.stage import ArrayMix
from edge_recorder.audio.frames import AudioFormat, Frames, int_samples
from edge_recorder.config.model import AudioConfig

OUTPUT_RATE = 16000
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_FULL_SCALE = {"S16_LE": 2.0**15, "S24_LE": 2.0**23, "S32_LE": 2.0**31}
_DC_BLOCK = 256  # grid of the high-pass evaluation (samples at 16 kHz); exactness, not latency
_DC_CUTOFF_HZ = 20.0
_MAX_GAP_FILL = 48000  # zeros are fed for lost frames in pieces of at most this many frames
_DB_FLOOR = -120.0


def _max(a: npt.NDArray[np.generic]) -> float:
    """ndarray.max() without its Python-level wrapper (called on every chunk)."""
    return float(np.maximum.reduce(a, axis=None))


def _min(a: npt.NDArray[np.generic]) -> float:
    return float(np.minimum.reduce(a, axis=None))


def dbfs(value: float) -> float:
    """Amplitude (1.0 = full scale) in dBFS, floored at -120 so silence stays a number."""
    return _DB_FLOOR if value <= 10 ** (_DB_FLOOR / 20) else 20.0 * math.log10(value)


@dataclass(frozen=True)
class Meters:
    """Levels of one processed block. Sums (not means) so blocks add up exactly."""

    samples: int  # output samples (16 kHz) in this block
    sum_squares: float  # of the output, after gain
    peak: float  # max |output| after gain (may exceed 1.0: clipped on encoding)
    clipped_in: int  # input samples (any channel) at digital full scale
    clipped_out: int  # output samples beyond full scale after gain
    silence_run_s: float  # length of the constant-input run that the block ends in
    digital_silence: bool  # that run is at least audio.digital_silence_s long
    gap_frames: int  # input frames lost before this block and filled with zeros

    @property
    def rms_dbfs(self) -> float:
        return dbfs(math.sqrt(self.sum_squares / self.samples)) if self.samples else _DB_FLOOR

    @property
    def peak_dbfs(self) -> float:
        return dbfs(self.peak)


@dataclass
class MeterTotals:
    """Running totals over a recording: what `record` and `analyze` print."""

    input_frames: int = 0
    samples: int = 0
    sum_squares: float = 0.0
    peak: float = 0.0
    clipped_in: int = 0
    clipped_out: int = 0
    gap_frames: int = 0
    digital_silence_s: float = 0.0

    def add(self, meters: Meters) -> None:
        self.samples += meters.samples
        self.sum_squares += meters.sum_squares
        self.peak = max(self.peak, meters.peak)
        self.clipped_in += meters.clipped_in
        self.clipped_out += meters.clipped_out
        self.gap_frames += meters.gap_frames

    @property
    def rms_dbfs(self) -> float:
        return dbfs(math.sqrt(self.sum_squares / self.samples)) if self.samples else _DB_FLOOR

    @property
    def peak_dbfs(self) -> float:
        return dbfs(self.peak)

    @property
    def clipped_samples(self) -> int:
        return self.clipped_in + self.clipped_out


def mix_weights(config: AudioConfig, channels: int) -> list[float]:
    """Weights as configured, or an equal mix; a zero weight drops a channel."""
    if config.mix_weights:
        if len(config.mix_weights) != channels:
            raise ValueError(
                f"audio.mix_weights has {len(config.mix_weights)} weights for {channels} channels"
            )
        return list(config.mix_weights)
    return [1.0 / channels] * channels


class DcBlocker:
    """One-pole high-pass y[n] = a*y[n-1] + x[n] - x[n-1], exact under any block split.

    Samples sit on a fixed grid of `_DC_BLOCK`-sample cells (counted from the first sample).
    Within a cell the recursion is unrolled into y[i] = a^i * (a*y_start + cumsum(a^-k d[k])[i])
    with numpy's sequential cumsum; a call lays its samples on the cells they belong to (zeros
    around them, the open cell's running sum just before its first sample), so every cell is
    summed in the same order whatever the call sizes. One call costs about a dozen numpy
    operations however it is cut, which matters at ten calls a second on a cold cache.
    a^-256 ≈ 3.5, so nothing is ill-conditioned.
    """

    def __init__(self, rate: int, cutoff_hz: float = _DC_CUTOFF_HZ) -> None:
        self.a = math.exp(-2.0 * math.pi * cutoff_hz / rate)
        k = np.arange(_DC_BLOCK, dtype=np.float64)
        self._pow = self.a**k
        self._inv = self.a**-k
        self._last_pow = float(self._pow[-1])
        self._x_last = 0.0
        self._y_cell = 0.0  # y at the end of the previous whole cell
        self._sum = 0.0  # running cumsum inside the open cell
        self._phase = 0  # samples already in the open cell

    def process(self, x: F32) -> F32:
        n = x.size
        if n == 0:
            return x
        p = self._phase
        cells = -(-(p + n) // _DC_BLOCK)
        grid = np.zeros((cells, _DC_BLOCK), np.float64)
        flat = grid.reshape(-1)
        x64 = x.astype(np.float64)
        d = flat[p : p + n]
        d[0] = x64[0] - self._x_last
        np.subtract(x64[1:], x64[:-1], out=d[1:])
        self._x_last = float(x64[-1])
        grid *= self._inv
        if p:
            flat[p - 1] = self._sum  # the open cell's sum so far, cumsum continues from it
        sums: F64 = grid.cumsum(axis=1)
        ends = sums[:, -1].tolist()
        starts = [self._y_cell] * cells
        y, a, last_pow = self._y_cell, self.a, self._last_pow
        for i in range(cells - 1):  # one scalar recurrence per whole cell
            y = last_pow * (a * y + ends[i])
            starts[i + 1] = y
        end = p + n
        if end % _DC_BLOCK == 0:  # the last cell is whole too
            y = last_pow * (a * y + ends[-1])
            self._sum, self._phase = 0.0, 0
        else:
            self._sum, self._phase = float(sums[-1, (end - 1) % _DC_BLOCK]), end % _DC_BLOCK
        self._y_cell = y
        out = self._pow * (a * np.array(starts)[:, None] + sums)
        return out.reshape(-1)[p:end].astype(np.float32)


class SilenceDetector:
    """Tracks how long the raw input has been all-zero or constant (a dead or muted mic)."""

    def __init__(self, rate: int, channels: int, threshold_s: float) -> None:
        self.rate = rate
        self.threshold = max(1, round(threshold_s * rate))
        self._last: npt.NDArray[np.int32] | None = None
        self.run = 0  # frames in the current constant run
        self.counted = 0  # frames of runs that reached the threshold

    def update(self, raw: npt.NDArray[np.int32]) -> None:
        """Extend or break the constant run; runs that reach the threshold count in full."""
        n = raw.shape[0]
        if n == 0:
            return
        if self.run + n < self.threshold and n > 1 and raw[-1].tobytes() != raw[-2].tobytes():
            # fast path (a live mic): no run can reach the threshold inside this block
            self.run = 1
            self._last = raw[-1].copy()
            return
        changes = np.flatnonzero(np.any(raw[1:] != raw[:-1], axis=1))
        continues = self._last is not None and bool(np.array_equal(raw[0], self._last))
        prev = self.run if continues else 0
        already = prev if prev >= self.threshold else 0  # frames of this run counted before
        if changes.size == 0:
            self.run = prev + n
            if self.run >= self.threshold:
                self.counted += self.run - already
        else:
            head = prev + int(changes[0]) + 1
            if head >= self.threshold:
                self.counted += head - already
            middle = np.diff(changes)
            self.counted += int(middle[middle >= self.threshold].sum())
            self.run = n - 1 - int(changes[-1])
            if self.run >= self.threshold:
                self.counted += self.run
        self._last = raw[-1].copy()

    @property
    def active(self) -> bool:
        return self.run >= self.threshold


def clipped_in(raw: npt.NDArray[np.int32], full: float) -> int:
    """Input samples at full scale (either rail): the pipeline's count and the idle meter's."""
    # ufunc reductions: ndarray.max/min add a Python-level wrapper call each, per chunk
    if raw.size and (_max(raw) >= full - 1 or _min(raw) <= -full):
        return int(np.count_nonzero((raw >= full - 1) | (raw <= -full)))
    return 0


class Dsp:
    """Streaming DSP for one recording; `process` takes Frames, returns 16 kHz mono float32."""

    def __init__(self, config: AudioConfig, fmt: AudioFormat) -> None:
        self.format = fmt
        scale = 1.0 / _FULL_SCALE[fmt.sample_format]
        self._weights = [np.float32(w * scale) for w in mix_weights(config, fmt.channels)]
        self._gain = np.float32(10 ** (config.gain_db / 20))
        self._full = _FULL_SCALE[fmt.sample_format]
        self._array = (
            ArrayMix(config, fmt, scale, OUTPUT_RATE)
            if config.array_processing != "average"
            else None
        )
        #: How the mics become one signal: the array kind that runs ("average" without a
        #: beam; "calibrated" may have fallen back) and why it differs from the config.
        self.array_kind = self._array.kind_used if self._array is not None else "average"
        self.array_note = self._array.note if self._array is not None else None
        mono = self._array is None  # else the array stage resamples per mic
        self._resampler = (
            soxr.ResampleStream(fmt.rate, OUTPUT_RATE, 1, dtype="float32", quality="HQ")
            if fmt.rate != OUTPUT_RATE and mono
            else None
        )
        # on the mono signal, after the mix or the beam: once, not per mic (array/stage.py)
        self._dc = DcBlocker(OUTPUT_RATE) if config.dc_removal else None
        self._silence = SilenceDetector(fmt.rate, fmt.channels, config.digital_silence_s)
        self.totals = MeterTotals()
        self._finished = False

    @property
    def array_mic_note(self) -> str | None:
        """The mics the beam has left out so far and why (None: all in, or no beam)."""
        return self._array.mic_note if self._array is not None else None

    def process(self, frames: Frames) -> tuple[F32, Meters]:
        if frames.format != self.format:
            raise ValueError(
                f"frames are {frames.format}, the pipeline was built for {self.format}"
            )
        raw = int_samples(frames.data, self.format)
        parts = [self._gap(frames.lost_before)] if frames.lost_before else []
        parts.append(self._shape(self._mix(raw), last=False))
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._silence.update(raw)
        self.totals.input_frames += raw.shape[0] + frames.lost_before
        return out, self._meter(out, clipped_in(raw, self._full), frames.lost_before)

    def finish(self) -> tuple[F32, Meters]:
        """Flush the resampler's tail; call once at the end of the recording."""
        if self._finished:
            return np.zeros(0, np.float32), self._meter(np.zeros(0, np.float32), 0, 0)
        self._finished = True
        out = self._shape(self._zeros(0), last=True)
        return out, self._meter(out, 0, 0)

    def _mix(self, raw: npt.NDArray[np.int32]) -> F32:
        if self._array is not None:
            return self._array.frames(raw)
        samples = raw.astype(np.float32)  # one contiguous conversion, then strided columns
        mono = np.zeros(raw.shape[0], dtype=np.float32)
        for ch, weight in enumerate(self._weights):
            if weight:
                mono += samples[:, ch] * weight
        return mono

    def _gap(self, lost: int) -> F32:
        """Zeros for frames the source lost, so the output timeline stays sample-accurate."""
        pieces = []
        while lost > 0:
            n = min(lost, _MAX_GAP_FILL)
            pieces.append(self._shape(self._zeros(n), last=False))
            lost -= n
        return np.concatenate(pieces)

    def _zeros(self, frames: int) -> F32:
        """Silence in the shape the mix stage produces: mono, or one column per mic."""
        shape = (frames, self._array.mics) if self._array is not None else (frames,)
        return np.zeros(shape, np.float32)

    def _shape(self, mono: F32, *, last: bool) -> F32:
        if self._array is not None:
            mono = self._array.shape(mono, last=last)
        elif self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        elif last:
            return mono
        if self._dc is not None:
            mono = self._dc.process(mono)
        if self._gain != 1:
            mono = mono * self._gain
        return mono.astype(np.float32, copy=False)

    def _meter(self, out: F32, clipped_in: int, gap: int) -> Meters:
        peak = max(_max(out), -_min(out)) if out.size else 0.0
        # in float64: a float32 dot product rounds differently per block and per CPU
        wide = out.astype(np.float64)
        meters = Meters(
            samples=int(out.size),
            sum_squares=float(np.dot(wide, wide)),
            peak=peak,
            clipped_in=clipped_in,
            clipped_out=int(np.count_nonzero(np.abs(out) > 1.0)) if peak > 1.0 else 0,
            silence_run_s=self._silence.run / self._silence.rate,
            digital_silence=self._silence.active,
            gap_frames=gap,
        )
        self.totals.add(meters)
        self.totals.digital_silence_s = self._silence.counted / self._silence.rate
        return meters


def to_pcm16(audio: F32) -> npt.NDArray[np.int16]:
    """Float [-1, 1) → little-endian int16, saturating (clipping is metered before this)."""
    scaled: F32 = np.rint(audio * np.float32(32768.0))
    np.minimum(np.maximum(scaled, -32768, out=scaled), 32767, out=scaled)  # = np.clip, leaner
    return scaled.astype(np.int16)  # numpy's int16 is little-endian on every target we run
