"""The array stage of the pipeline: capture channels → one 16 kHz signal via a processor.

`Dsp` uses `ArrayMix` in place of its weighted mix when `audio.array_processing` is not
"average". Every step is chunk-invariant, so the pipeline's promise (any framing of a
recording gives the same output, bit for bit) holds with a beamformer too: one multichannel
soxr stream resamples the mics and the processor works on its own fixed batch grid. The DC
offsets are removed by `Dsp`'s one DC blocker on the beam's output, not per mic: the beams
are linear per bin and never look below 300 Hz to find or gate the talker, so a mic's
offset only reaches the output's lowest bins, and one blocker costs a sixth of six (a 6-mic
HAT's per-mic blockers were ~1.1 ms of CPU per audio second, a tenth of the budget).

With "calibrated" the room's calibration file (`audio.array_calibration`) is read once per
file version and checked against the configured geometry; a missing or refused file never
stops a recording: the blind `audio.array_calibration_fallback` runs instead, and the reason
is logged (once per reason), kept for the device status and shown by `edge-recorder check`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array.calibration_file import (
    ArrayCalibration,
    CalibrationError,
    load_calibration,
)
from edge_recorder.audio.array.mic_balance import MicBalance, MicFault
from edge_recorder.audio.frames import AudioFormat
from edge_recorder.config.model import AudioConfig
from edge_recorder.support.logs import get_logger

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
#: The device status warning while "calibrated" runs its fallback (the reason: log, check).
CALIBRATION_WARNING = "array_calibration_fallback"
#: The device status warning while the newest recording left a faulty mic out of the beam.
MIC_FAULT_WARNING = "array_mic_fault"

log = get_logger(__name__)
_Loaded = tuple[ArrayCalibration | None, str | None]  # the calibration, or why not
_lock = threading.Lock()
_loaded: dict[Path, tuple[tuple[int, int, int, bytes], _Loaded]] = {}  # per path, newest only
_warned: set[str] = set()  # reasons already logged
_last_note: list[str | None] = [None]  # the newest calibrated ArrayMix's note
_last_mic: list[tuple[list[MicFault], int]] = [([], 0)]  # newest recording's verdict, its mics


def mic_positions_m(config: AudioConfig) -> F64:
    """audio.mic_positions_mm as (M, 3) metres, the array processors' unit."""
    return np.array(config.mic_positions_mm, dtype=np.float64).reshape(-1, 3) / 1000.0


def load_array_calibration(path: Path, positions_m: F64) -> _Loaded:
    """The calibration at `path` for mics at `positions_m`, or None and why not.

    Read once per file version (inode, mtime, size) and geometry: a recording does not
    re-read it, and a new calibration is picked up at the next recording."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None, f"{path} does not exist (make it with `edge-recorder calibrate-array`)"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    key = (st.st_ino, st.st_mtime_ns, st.st_size, positions_m.tobytes())
    with _lock:
        hit = _loaded.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    outcome: _Loaded
    try:
        outcome = load_calibration(path, positions_m), None
        log.info(
            "array calibration loaded",
            calibration_file=str(path),
            spots_count=len(outcome[0].spots),
        )
    except CalibrationError as exc:
        outcome = None, str(exc) if str(path) in str(exc) else f"{path}: {exc}"
    except OSError as exc:
        outcome = None, f"cannot read {path}: {exc.strerror or exc}"
    except Exception as exc:  # a file the loader did not foresee must not stop a recording
        outcome = None, f"{path} could not be read ({type(exc).__name__}: {exc})"
    with _lock:
        _loaded[path] = (key, outcome)
    return outcome


def calibration_note(config: AudioConfig) -> str | None:
    """Why "calibrated" would run its fallback now (None: it would not, or another kind is
    configured); reported as a recording would (log once, status), so the daemon can say it
    at start-up rather than at the first recording."""
    if config.array_processing != "calibrated":
        return None
    path = config.array_calibration
    calibration, reason = load_array_calibration(path, mic_positions_m(config))
    note = None if calibration is not None else _note(reason, config)
    _record_outcome(note, path)
    return note


def last_calibration_note() -> str | None:
    """The newest calibrated recording's fallback note (None: calibrated, or none yet)."""
    return _last_note[0]


def fallback_detail(reason: str | None, config: AudioConfig) -> str:
    """What runs instead of the calibration and why: the log line's and `check`'s words."""
    return f"not used: {reason}; using {config.array_calibration_fallback}"


def _note(reason: str | None, config: AudioConfig) -> str:
    return f"array calibration {fallback_detail(reason, config)}"


def _record_outcome(note: str | None, path: Path) -> None:
    """Keep the note for the status; log a new reason once (a path and a reason: no PHI)."""
    _last_note[0] = note
    with _lock:
        if note is None:
            _warned.clear()  # a problem that comes back is news again
            return
        if note in _warned:
            return
        _warned.add(note)
    log.warning(note, calibration_file=str(path))


def last_mic_note() -> str | None:
    """The faulty mics the newest recording's beam left out, once it could tell (None: every
    mic in, or no recording yet): a mic fails between recordings as often as during one."""
    return mic_note(*_last_mic[0])


def last_mic_faults() -> list[MicFault]:
    """The mics behind `last_mic_note` (for the status: numbers and reasons only)."""
    return _last_mic[0][0]


def mic_note(faults: list[MicFault], channels: int) -> str | None:
    """The log line's, the status's and `record`'s words for the mics left out."""
    if not faults:
        return None
    named = ", ".join(f.describe(channels) for f in faults)
    return f"array {named}: left out of the beam (check the mic; the recording goes on)"


def _record_mic_outcome(faults: list[MicFault], channels: int) -> None:
    """Keep the verdict for the status; log a change once (mic numbers and levels: no PHI)."""
    before = last_mic_note()
    _last_mic[0] = (faults, channels)
    note = last_mic_note()
    if note == before:
        return
    if note is not None:
        log.warning(note)
    else:
        log.info("array mics all in the beam again")


class ArrayMix:
    """The microphones → one signal at `rate_out` through an array processor (beamformer).

    Channels past `audio.mic_positions_mm` (a playback loopback) are left out. The
    processor's fixed delay is compensated here, not passed on: its first `delay_samples`
    outputs (warm-up) are dropped and the last call pushes as many zeros through, so the
    output has the plain mix's length and timeline (output sample n is the sound at device
    frame n·rate/rate_out); live, each sample just comes out `latency_s` later
    (`audio.array_batch_hops`: 144 ms at 8 hops, 48 ms at 2).
    """

    def __init__(self, config: AudioConfig, fmt: AudioFormat, scale: float, rate_out: int) -> None:
        positions = mic_positions_m(config)
        self.mics = positions.shape[0]
        self._scale = np.float32(scale)
        self._resampler = (
            soxr.ResampleStream(fmt.rate, rate_out, self.mics, dtype="float32", quality="HQ")
            if fmt.rate != rate_out
            else None
        )
        #: The kind actually running ("calibrated" may fall back) and why, if it differs.
        self.kind_used: str = config.array_processing
        self.note: str | None = None
        calibration = None
        if self.kind_used == "calibrated":
            calibration, reason = load_array_calibration(config.array_calibration, positions)
            if calibration is None:
                self.kind_used, self.note = config.array_calibration_fallback, _note(reason, config)
        try:
            self._processor = make_array_processor(
                self.kind_used,
                positions,
                rate_out,
                batch=config.array_batch_hops,
                calibration=calibration,
            )
        except CalibrationError as exc:  # the beam refused a calibration the loader passed
            self.kind_used, self.note = config.array_calibration_fallback, _note(str(exc), config)
            self._processor = make_array_processor(
                self.kind_used, positions, rate_out, batch=config.array_batch_hops
            )
        if config.array_processing == "calibrated":
            _record_outcome(self.note, config.array_calibration)
        self._drop = self._processor.delay_samples
        self.latency_s = self._processor.delay_samples / rate_out
        #: The mics the beam leaves out and why (`mic_balance`), once it could tell.
        self.mic_note: str | None = None
        self._balance: MicBalance | None = getattr(self._processor, "balance", None)
        self._balance_version = 0

    def frames(self, raw: npt.NDArray[np.int32]) -> F32:
        """Capture integers → (frames, mics) float32 at full scale 1.0."""
        scaled: F32 = raw[:, : self.mics].astype(np.float32) * self._scale
        return scaled

    def shape(self, block: F32, *, last: bool) -> F32:
        """(frames, mics) at the capture rate → mono at `rate_out`, delay compensated."""
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        if last:  # flush the processor's delay line
            flush = np.zeros((self._processor.delay_samples, self.mics), np.float32)
            block = np.concatenate([block, flush])
        out = self._processor.process(np.ascontiguousarray(block, dtype=np.float32))
        balance = self._balance
        if balance is not None and balance.version != self._balance_version:
            self._balance_version = balance.version
            faults = balance.faults()
            self.mic_note = mic_note(faults, self.mics)
            _record_mic_outcome(faults, self.mics)
        if self._drop:
            dropped = min(self._drop, out.size)
            out, self._drop = out[dropped:], self._drop - dropped
        return out
