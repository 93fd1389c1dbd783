"""Array processing: turn the microphones of a known geometry into one mono signal.

The contract every processor keeps (the pipeline and the evaluation code against it):
`process` takes (frames, M) float32 at `rate` and returns exactly `frames` mono float32
samples, `delay_samples` late (the first `delay_samples` outputs of a stream are warm-up
zeros); the output does not depend on how the input is cut into blocks, bit for bit.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_recorder.audio.array.beamformers import AverageProcessor, DasProcessor, MvdrProcessor
from edge_recorder.audio.array.calibrated import CalibratedBeam
from edge_recorder.audio.array.calibration_file import ArrayCalibration
from edge_recorder.audio.array.dereverb import MvdrWpe, WpeMvdr
from edge_recorder.audio.array.postfilter import PostFilteredMvdr, PostFilteredMvdrWpe
from edge_recorder.audio.array.stft import BATCH

KINDS: tuple[str, ...] = (
    "average",
    "das",
    "mvdr",
    "mvdr-postfilter",
    "wpe-mvdr",
    "mvdr-wpe",
    "mvdr-wpe-postfilter",
    "calibrated",
)


class ArrayProcessor(Protocol):
    """One stream's array processor (stateful: one instance per recording)."""

    delay_samples: int

    def process(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


def make_array_processor(
    kind: str,
    positions_m: npt.NDArray[np.float64],
    rate: int = 16000,
    batch: int = BATCH,
    calibration: ArrayCalibration | None = None,
) -> ArrayProcessor:
    """A processor of `kind` for mics at `positions_m` ((M, 3), metres, board frame).

    `batch` (hops per STFT batch) trades live latency for CPU: the added delay is
    batch·256 + 255 samples; the default 8 is what the pipeline uses. "calibrated" needs
    `calibration`, made on this layout (else ValueError; a CalibrationError is one)."""
    positions = np.asarray(positions_m, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"mic positions must be (M, 3), got {positions.shape}")
    if kind == "average":
        return AverageProcessor(positions.shape[0])
    if kind not in KINDS:
        raise ValueError(f"unknown array processing {kind!r}; one of {', '.join(KINDS)}")
    if positions.shape[0] < 2:
        raise ValueError(f"array processing {kind!r} needs at least 2 microphones")
    if kind == "calibrated":
        if calibration is None:
            raise ValueError(
                "array processing 'calibrated' needs a calibration: run "
                "edge-recorder calibrate-array, or choose a blind kind"
            )
        return CalibratedBeam(positions, rate, batch, calibration)
    beams: dict[str, type[DasProcessor]] = {
        "das": DasProcessor,
        "mvdr": MvdrProcessor,
        "mvdr-postfilter": PostFilteredMvdr,
        "wpe-mvdr": WpeMvdr,
        "mvdr-wpe": MvdrWpe,
        "mvdr-wpe-postfilter": PostFilteredMvdrWpe,
    }
    return beams[kind](positions, rate, batch)


__all__ = ["KINDS", "ArrayProcessor", "make_array_processor"]
