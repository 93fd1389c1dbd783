"""Mic health between recordings: level, peak, clipping and digital silence on the raw frames.

Between encounters the status only needs to show that the mic is alive (MicStatus level, peak,
clipped samples and the dead-mic alarm); running the whole `Pipeline` (mix, resample, DC
removal, VAD) for that cost most of the idle daemon's CPU (issue #24). `IdleMeter` computes the
same readings on the native frames in one pass per batch, with no resampler, no high-pass and
no VAD:

- clipped input samples and digital silence are computed exactly as `Dsp` computes them (the
  same full-scale test, the same `SilenceDetector` on the same raw frames), so the counts and
  the alarm are identical to the full pipeline's;
- level and peak are of the configured mono mix with `audio.gain_db`, at the native rate, with
  the batch's mean removed instead of the 20 Hz high-pass. They differ from the pipeline's
  (which measures after resampling to 16 kHz and the high-pass) only by what lies below 20 Hz
  or above 8 kHz: for room sound and speech that is a fraction of a dB (tests/unit/audio/
  test_levels.py bounds it), well inside what a level meter on a dashboard is read to.
With `audio.array_processing` set, the level is that of the mix, not of the beam.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.dsp import (
    _FULL_SCALE,
    Meters,
    SilenceDetector,
    _max,
    _min,
    clipped_in,
    mix_weights,
)
from edge_recorder.audio.frames import AudioFormat, Frames, int_samples
from edge_recorder.config.model import AudioConfig

F32 = npt.NDArray[np.float32]


class IdleMeter:
    """Levels and the dead-mic detector for a stream of blocks; `measure` one batch at a time.

    Blocks must be handed in timeline order (as `Dsp.process` gets them); lost frames are not
    audio and are neither metered nor part of a silence run, as in `Dsp`."""

    def __init__(self, config: AudioConfig, fmt: AudioFormat) -> None:
        self.format = fmt
        self._full = _FULL_SCALE[fmt.sample_format]
        gain = 10 ** (config.gain_db / 20) / self._full
        weights = [w * gain for w in mix_weights(config, fmt.channels)]
        self._weights = np.asarray(weights, np.float32)
        self._silence = SilenceDetector(fmt.rate, fmt.channels, config.digital_silence_s)
        self._seen = 0  # frames measured since this meter was made
        self._frames = np.empty((0, fmt.channels), np.float32)
        self._mono = np.empty(0, np.float32)

    def frames_to_silence(self) -> int | None:
        """Frames still needed before the current constant run raises the alarm; None when no
        run is under way (a live mic) or the alarm is already up."""
        run, threshold = self._silence.run, self._silence.threshold
        return threshold - run if 1 < run < threshold else None

    @property
    def constant_throughout(self) -> bool:
        """Every frame measured so far had one value: no sign of a live mic yet."""
        return self._seen > 0 and self._silence.run >= self._seen

    def measure(self, blocks: list[Frames]) -> Meters | None:
        """Readings over the blocks (contiguous or not); None for no frames."""
        for block in blocks:
            if block.format != self.format:
                raise ValueError(f"frames are {block.format}, the meter expects {self.format}")
        data = blocks[0].data if len(blocks) == 1 else b"".join(b.data for b in blocks)
        raw = int_samples(data, self.format)
        if raw.shape[0] == 0:
            return None
        self._silence.update(raw)
        n = raw.shape[0]
        self._seen += n
        clipped = clipped_in(raw, self._full)  # as Dsp.process counts them
        if self._frames.shape[0] < n:  # buffers kept across calls: no page faults per batch
            self._frames = np.empty((n, self.format.channels), np.float32)
            self._mono = np.empty(n, np.float32)
        frames, mono = self._frames[:n], self._mono[:n]
        np.copyto(frames, raw, casting="unsafe")
        np.matmul(frames, self._weights, out=mono)
        mono -= np.float32(np.add.reduce(mono, dtype=np.float64) / n)  # DC: see the docstring
        peak = max(_max(mono), -_min(mono))
        return Meters(
            samples=n,
            sum_squares=float(np.dot(mono, mono)),  # float32 sums: ~1e-5 dB, plenty for a meter
            peak=peak,
            clipped_in=clipped,
            clipped_out=int(np.count_nonzero(np.abs(mono) > 1.0)) if peak > 1.0 else 0,
            silence_run_s=self._silence.run / self._silence.rate,
            digital_silence=self._silence.active,
            gap_frames=sum(b.lost_before for b in blocks),
        )
