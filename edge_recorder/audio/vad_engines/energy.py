"""A numpy-only detector: speech-band energy over an adaptive noise floor.

The floor follows the band (250-4000 Hz) energy down quickly and up slowly (a few seconds),
so it settles on the background between words; a window's probability rises as it stands
more than `margin_db` above that floor. Cheap and dependency-free: the fallback engine. (A
spectral-flatness gate against hiss was tried and made F1 worse on the benchmark set.)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

WINDOW = 320  # 20 ms at 16 kHz
F32 = npt.NDArray[np.float32]
_BAND = (250.0, 4000.0)  # Hz: where speech energy lives
_ABS_FLOOR_DB = -75.0  # below this nothing is speech (digital silence, a muted mic)


class EnergyVad:
    name = "energy"
    window = WINDOW

    def __init__(self, margin_db: float = 4.0, slope_db: float = 2.0, rise_s: float = 3.0) -> None:
        self.margin_db = margin_db
        self.slope_db = slope_db
        self._up = 1.0 - math.exp(-(WINDOW / 16000) / rise_s)
        self._down = 0.3
        freqs = np.fft.rfftfreq(WINDOW, 1 / 16000)
        self._band = (freqs >= _BAND[0]) & (freqs <= _BAND[1])
        self._taper = np.hanning(WINDOW).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        self._floor: float | None = None

    def probabilities(self, windows: F32) -> F32:
        if windows.shape[0] == 0:
            return np.zeros(0, np.float32)
        spectrum = np.abs(np.fft.rfft(windows * self._taper, axis=1))[:, self._band] ** 2
        spectrum += 1e-12
        level = 10.0 * np.log10(spectrum.mean(axis=1)) - 10.0 * math.log10(WINDOW)
        probs = np.empty(windows.shape[0], np.float32)
        for i, db in enumerate(level.tolist()):
            if self._floor is None:
                self._floor = db
            above = db - self._floor
            rate = self._down if above < 0 else self._up
            self._floor += rate * above
            if db < _ABS_FLOOR_DB:
                probs[i] = 0.0
                continue
            probs[i] = 1.0 / (1.0 + math.exp(-(above - self.margin_db) / self.slope_db))
        return probs
