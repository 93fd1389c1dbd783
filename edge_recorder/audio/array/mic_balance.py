"""Each microphone's level against the others': a blind gain match and a faulty-mic detector.

Why: every beam models what each mic hears as the same sound, shifted in time. A mic that
does not (a dead capsule, a port blocked by dust or paint, a loose connector, a capsule a
few dB off its neighbours) breaks that model, and MVDR, which keeps the talker
undistorted only through the model, then partly cancels the talker. Measured on the
far-field set (4-mic HAT, RT60 0.5 s, 5 dB SNR, `mvdr-wpe-postfilter`): one mic of zeros
took the beam's output 27 dB below the plain mix's level and its SI-SDR and STOI below the
plain mix's; one mic 6 dB low took it 8 dB down; a 6-mic HAT lost 10 dB with one dead mic.
Nothing else would notice: the array as a whole still delivers sound, so the dead-mic alarm
(digital silence of the whole capture) stays quiet.

How: the mics of a 5-10 cm array all hear the same room (its diffuse noise and echo, and
nearly the same direct sound), so their long-run levels agree within about a decibel. On
every adaptation window (the beams' fixed grid, so the processors stay bit-exact under any
framing) each mic's power in the speech band is taken in dB against the median of the mics
that hear the room (those whose level comes and goes with the talkers: a hum or an
oscillating preamp is steady, so two mics, where the plain median is the mean of a loud
faulty mic and a healthy one, still tell which is which), and averaged (`MEMORY_S`, a plain
mean over the first windows); windows in which most of the array is digitally silent say
nothing and are skipped.

- A mic more than `GAIN_DEADBAND_DB` off the median gets that level, in `GAIN_STEP_DB`
  steps, as its gain in the beam's steering (the model of what it hears), so a mismatch is
  matched rather than cancelled; matched mics keep exactly unit gain, and the weights are
  re-solved only when a step changes.
- After `EVIDENCE_S`, a mic more than `FAULT_DB` below or above the median is **left out**
  (weight 0, its pairs out of the direction tracker) until it is back within `CLEAR_DB`:
  "silent" (no signal at all), "weak" or "loud" (a hum or an oscillating preamp). A mic of
  zeros is out after `SILENT_EVIDENCE_S` (256 ms), at the start or mid-recording.

The faults are reported (`faults`) for the log, the device status and `record`; the levels
say nothing about what was said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
B8 = npt.NDArray[np.bool_]

MEMORY_S = 8.0  # the long-run level's time constant
EVIDENCE_S = 1.0  # of signal before a verdict (matched mics are within 0.25 dB by then)
# A mic of zeros while the others hear the room is unambiguous: a verdict after this long
# (in whole windows) rather than a second, so less of a recording's start runs with it.
SILENT_EVIDENCE_S = 0.256
FAULT_DB = 12.0  # this far from the median mic: left out of the beam
CLEAR_DB = 8.0  # and taken back in once within this
FLOOR_DB = -40.0  # a window's level is clipped here, so a mic that comes back is seen soon
SILENT_POWER = 1e-14  # a mic's band power below this (full scale 1.0) is no signal at all
GAIN_DEADBAND_DB = 1.0  # closer to the median than this: unit gain (matched capsules)
MODULATION_SHARE = 0.5  # a mic whose level moves less than this x the liveliest's: no reference
GAIN_STEP_DB = 0.5  # gains move in steps, so the beam re-solves only when one moves

Reason = Literal["silent", "weak", "loud"]


@dataclass(frozen=True)
class MicFault:
    """One mic left out of the beam: its channel (0-based), why, and its level against the
    median mic (dB, long-run)."""

    index: int
    reason: Reason
    level_db: float

    def describe(self, channels: int) -> str:
        return f"mic {self.index + 1} of {channels} {self.reason} ({self.level_db:+.0f} dB)"


class MicBalance:
    """The per-mic gains and faults of one array, updated once per adaptation window.

    A handful of mics: plain Python floats, not numpy (a numpy update cost ~80 µs per
    window, 0.6 ms per audio second, against the pipeline's 10 ms budget)."""

    def __init__(self, channels: int, window_s: float) -> None:
        self.channels = channels
        self._alpha = 1.0 - math.exp(-window_s / MEMORY_S)
        self._evidence = math.ceil(EVIDENCE_S / window_s)
        self._silent_evidence = max(1, math.ceil(SILENT_EVIDENCE_S / window_s - 1e-9))
        self._level = [0.0] * channels  # long-run dB against the median mic
        self._silent = [False] * channels  # no signal in the last window
        self._silent_run = [0] * channels  # windows in a row without signal
        self._mean_db = [0.0] * channels  # each mic's window level (dB), long-run mean
        self._var_db = [0.0] * channels  # and its variance: how much the mic's level moves
        self._out = [False] * channels
        self._gains = [1.0] * channels
        self.windows = 0  # windows with signal so far
        self.left_out: B8 = np.zeros(channels, bool)
        self.gains: F64 = np.ones(channels)  # steering gains; 0 for a mic left out
        self.live_count = channels
        self.decided = False  # EVIDENCE_S of signal seen: `faults` is the verdict
        self.version = 0  # counts the verdicts: the first, then each change

    @property
    def live(self) -> B8:
        live: B8 = ~self.left_out
        return live

    def update(self, band_power: F64) -> bool:
        """One window's mean power per mic in the speech band (M,); True when the gains or
        the mics left out changed (the beam must re-steer)."""
        power: list[float] = band_power.tolist()
        ordered = sorted(power)
        half = len(ordered) // 2
        median = ordered[half] if len(ordered) % 2 else 0.5 * (ordered[half - 1] + ordered[half])
        if median < SILENT_POWER:  # most of the array is silent: nothing to compare
            return False
        self._silent = [p < SILENT_POWER for p in power]
        self._silent_run = [
            run + 1 if silent else 0
            for run, silent in zip(self._silent_run, self._silent, strict=True)
        ]
        self.windows += 1
        step = max(1.0 / self.windows, self._alpha)
        reference = self._reference(power, step)
        levels = self._level
        for m, p in enumerate(power):
            level = max(10.0 * math.log10(max(p, 1e-30) / reference), FLOOR_DB)
            levels[m] += step * (level - levels[m])
        silent_mic = max(self._silent_run) >= self._silent_evidence
        if self.windows < (self._silent_evidence if silent_mic else self._evidence):
            return False
        if not self.decided:
            self.decided = True
            self.version += 1
        off = [abs(level) for level in levels]
        out = [  # zeros for SILENT_EVIDENCE_S are out at once, whatever the long run says
            run >= self._silent_evidence or d > (CLEAR_DB if was else FAULT_DB)
            for d, was, run in zip(off, self._out, self._silent_run, strict=True)
        ]
        if all(out):  # the median is never this far from itself; never leave none
            out[off.index(min(off))] = False
        gains = [
            0.0
            if o
            else before  # zeros this window say nothing about the gain (a mic dying now)
            if silent
            else 10.0 ** (round(lv / GAIN_STEP_DB) * GAIN_STEP_DB / 20.0)
            if d > GAIN_DEADBAND_DB
            else 1.0
            for o, lv, d, silent, before in zip(
                out, levels, off, self._silent, self._gains, strict=True
            )
        ]
        if out == self._out and gains == self._gains:
            return False
        self._out, self._gains = out, gains
        self.left_out, self.gains = np.array(out), np.array(gains)
        self.live_count = out.count(False)
        self.version += 1
        return True

    def _reference(self, power: list[float], step: float) -> float:
        """The median power of the mics that hear the room: those whose window level moves
        at least `MODULATION_SHARE` as much as the liveliest mic's (speech comes and goes;
        an oscillating preamp or a hum does not), never a silent one. With two mics the plain
        median cannot tell a loud faulty mic from a weak healthy one; this can."""
        for m, p in enumerate(power):  # exponentially weighted mean and variance, in dB
            delta = 10.0 * math.log10(max(p, SILENT_POWER)) - self._mean_db[m]
            self._mean_db[m] += step * delta
            self._var_db[m] = (1.0 - step) * (self._var_db[m] + step * delta * delta)
        heard = [
            (p, var) for p, var, s in zip(power, self._var_db, self._silent, strict=True) if not s
        ]
        floor = MODULATION_SHARE**2 * max((var for _, var in heard), default=0.0)
        chosen = sorted(p for p, var in heard if var >= floor) or sorted(power)
        half = len(chosen) // 2
        return chosen[half] if len(chosen) % 2 else 0.5 * (chosen[half - 1] + chosen[half])

    def faults(self) -> list[MicFault]:
        """The mics left out now, in channel order."""
        found = []
        for index, out in enumerate(self._out):
            if out:
                level = self._level[index]
                silent = self._silent[index]
                reason: Reason = "silent" if silent else "weak" if level < 0 else "loud"
                found.append(MicFault(index, reason, round(level, 1)))
        return found


TAKE_WINDOW = 4096  # 256 ms at 16 kHz, the blind beams' adaptation window
TAKE_BAND_HZ = (300.0, 4000.0)  # the direction tracker's band, which the gate measures


def take_faults(take: F64, rate: int = 16000) -> list[MicFault]:
    """The verdict a beam would reach on a whole take ((M, N) at `rate`): for the
    technician's commands, which must not calibrate or score a broken array unawares."""
    channels, frames = take.shape
    freqs = np.fft.rfftfreq(TAKE_WINDOW, 1.0 / rate)
    band = (freqs >= TAKE_BAND_HZ[0]) & (freqs <= TAKE_BAND_HZ[1])
    window = np.hanning(TAKE_WINDOW)
    balance = MicBalance(channels, TAKE_WINDOW / rate)
    for start in range(0, frames - TAKE_WINDOW + 1, TAKE_WINDOW):
        spectra = np.fft.rfft(take[:, start : start + TAKE_WINDOW] * window, axis=1)[:, band]
        balance.update((spectra.real**2 + spectra.imag**2).mean(axis=1) / TAKE_WINDOW)
    return balance.faults()


__all__ = ["MicBalance", "MicFault", "take_faults"]
