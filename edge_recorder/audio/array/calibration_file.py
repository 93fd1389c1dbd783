"""The array calibration file: what `edge-recorder calibrate-array` measured, validated.

A calibration is made for one room, one mounting and one microphone layout: per talker spot
the transfer h from the spot to each mic (relative to the direct sound at the array centre),
the spot's spatial covariance Ψ per unit direct-sound power, and the direct sound's arrival
times, all on the 257 bins of the beamformers' 512-point bank at 16 kHz (`spots.py` measures
them, `calibrated.py` beams with them).

The file is an uncompressed `.npz` written without pickle, replaced atomically (temp file in
the same directory, fsync, rename), so a crash or a full disk never leaves half a file where
the daemon reads. Reading it treats it as untrusted input: the size is bounded before
anything is parsed, only the expected members are accepted, nothing is unpickled, every
array's dtype, shape and finiteness is checked, and every refusal is one exception type,
`CalibrationError`, whose message says what is wrong and what to do.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

FORMAT_VERSION = 1
RATE = 16000
BINS = 257  # the 512-point bank's bins at RATE
MAX_SPOTS = 16
MAX_MICS = 8  # audio.mic_positions_mm holds at most 8
MAX_FILE_BYTES = 8 * 1024 * 1024  # 16 spots of 8 mics take ~4.7 MB
LAYOUT_TOLERANCE_M = 0.002  # a calibration is for this layout if every mic is this close
HERMITIAN_TOLERANCE = 1e-6  # |Ψ - Ψᴴ| relative to the bin's largest |Ψ|
MAX_ARRIVAL_S = 0.002  # |direct-sound arrival - centre|: far beyond any board's aperture
NAME = re.compile(r"[a-z0-9._-]{1,32}")
_REDO = "re-run edge-recorder calibrate-array"
_MEMBERS = ("format", "rate", "created", "positions_m", "names", "h", "psi", "arrivals_s")


class CalibrationError(ValueError):
    """A calibration (file) that must not be used; the message says why and what to do."""


@dataclass(frozen=True)
class Spot:
    """One calibrated talker spot, per bin of the 512-point bank (F = 257)."""

    name: str  # e.g. "exam-table"; ascii [a-z0-9._-]{1,32}
    h: C128  # (F, M) transfer to each mic relative to the direct sound at the array centre
    psi: C128  # (F, M, M) spatial covariance per unit direct-sound power
    arrivals_s: F64  # (M,) direct-sound arrival times relative to the centre


@dataclass(frozen=True)
class ArrayCalibration:
    """Every spot of one room, and the layout and rate they were measured with."""

    spots: tuple[Spot, ...]  # 1..MAX_SPOTS
    positions_m: F64  # (M, 3) the mic layout it was made on (metres, board frame)
    rate: int  # RATE
    created: str  # ISO-8601 UTC


def check_name(name: str) -> None:
    """A spot name: short ascii, safe in logs, file names and status messages."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise CalibrationError(
            f"spot name {name!r} is not valid: use 1-32 characters of a-z, 0-9, '.', '_', '-'"
        )


def _array(value: object, what: str, dtype: type[np.generic], shape: tuple[int, ...]) -> None:
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(dtype):
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise CalibrationError(f"{what} must be {np.dtype(dtype)}, got {got}: {_REDO}")
    if value.shape != shape:
        raise CalibrationError(f"{what} must have shape {shape}, got {value.shape}: {_REDO}")
    if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        raise CalibrationError(f"{what} holds NaN or infinite values: {_REDO}")


def check_calibration(calibration: ArrayCalibration) -> None:
    """Refuse (CalibrationError) anything the beam could not use safely."""
    positions = calibration.positions_m
    if not isinstance(positions, np.ndarray) or positions.ndim != 2:
        raise CalibrationError(f"the mic layout must be an (M, 3) array: {_REDO}")
    m = positions.shape[0]
    if not 2 <= m <= MAX_MICS:
        raise CalibrationError(f"the calibration has {m} mics, 2 to {MAX_MICS} expected: {_REDO}")
    _array(positions, "the mic layout", np.float64, (m, 3))
    if isinstance(calibration.rate, bool) or calibration.rate != RATE:
        raise CalibrationError(f"the calibration is at {calibration.rate} Hz, not {RATE}: {_REDO}")
    try:
        datetime.fromisoformat(calibration.created)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"the creation time {calibration.created!r} is not ISO-8601: {_REDO}"
        ) from None
    spots = calibration.spots
    if not isinstance(spots, tuple) or not 1 <= len(spots) <= MAX_SPOTS:
        count = len(spots) if isinstance(spots, tuple) else "no"
        raise CalibrationError(f"{count} spots: a calibration holds 1 to {MAX_SPOTS}: {_REDO}")
    names = [s.name for s in spots]
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise CalibrationError(f"spot names must be unique, {', '.join(twice)} repeats: {_REDO}")
    for s in spots:
        _array(s.h, f"h of spot {s.name}", np.complex128, (BINS, m))
        _array(s.psi, f"Ψ of spot {s.name}", np.complex128, (BINS, m, m))
        _array(s.arrivals_s, f"the arrival times of spot {s.name}", np.float64, (m,))
        scale = np.max(np.abs(s.psi), axis=(1, 2))
        asymmetry = np.max(np.abs(s.psi - s.psi.conj().transpose(0, 2, 1)), axis=(1, 2))
        diagonal = np.diagonal(s.psi, axis1=1, axis2=2).real
        if np.any(asymmetry > HERMITIAN_TOLERANCE * scale) or np.any(diagonal < 0.0):
            raise CalibrationError(f"Ψ of spot {s.name} is not a covariance (Hermitian): {_REDO}")
        if np.any(np.abs(s.arrivals_s) > MAX_ARRIVAL_S):
            raise CalibrationError(f"the arrival times of spot {s.name} are implausible: {_REDO}")


def check_layout(calibration: ArrayCalibration, positions_m: F64) -> None:
    """The calibration must have been made on this mic layout (every mic within 2 mm)."""
    mine = np.asarray(positions_m, np.float64)
    theirs = calibration.positions_m
    if mine.shape != theirs.shape:
        raise CalibrationError(
            f"the calibration was made for another array ({theirs.shape[0]} mics, this one has "
            f"{mine.shape[0]}): {_REDO}"
        )
    off = np.linalg.norm(mine - theirs, axis=1)
    worst = int(np.argmax(off))
    if not off[worst] <= LAYOUT_TOLERANCE_M:  # NaN positions are refused too
        raise CalibrationError(
            f"the calibration was made for another array (mic {worst + 1} is "
            f"{off[worst] * 1000:.1f} mm away from where it was): {_REDO}"
        )


def save_calibration(path: Path, calibration: ArrayCalibration) -> None:
    """Write atomically: a temp file in the same directory, fsync, rename (then the directory
    fsync'd), so readers see the old file or the new one, never a part; np.savez, no pickle."""
    check_calibration(calibration)
    spots = calibration.spots
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "format": np.array(FORMAT_VERSION, np.int64),
        "rate": np.array(calibration.rate, np.int64),
        "created": np.array(calibration.created, np.str_),
        "positions_m": calibration.positions_m,
        "names": np.array([s.name for s in spots], np.str_),
        "h": np.stack([s.h for s in spots]),
        "psi": np.stack([s.psi for s in spots]),
        "arrivals_s": np.stack([s.arrivals_s for s in spots]),
    }
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read(path: Path) -> bytes:
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise CalibrationError(
            f"cannot read the calibration {path} ({e.strerror or e}): {_REDO} start/finish"
        ) from e
    if len(data) > MAX_FILE_BYTES:
        raise CalibrationError(
            f"the calibration {path} is larger than {MAX_FILE_BYTES // 2**20} MiB: "
            f"not a calibration file; {_REDO}"
        )
    return data


def _members(data: bytes, path: Path) -> dict[str, object]:
    """The file's arrays, after checking it is a zip of exactly the expected .npy members
    whose unpacked size is bounded too (no zip bomb) and loading them without pickle."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CalibrationError(
            f"{path} is not a calibration file (not an npz archive, or truncated): {_REDO}"
        ) from e
    names = sorted(i.filename for i in infos)
    if names != sorted(f"{k}.npy" for k in _MEMBERS):
        raise CalibrationError(
            f"{path} is not a calibration file this edge-recorder reads (members "
            f"{', '.join(names)[:200]}): {_REDO}"
        )
    if sum(i.file_size for i in infos) > MAX_FILE_BYTES:
        raise CalibrationError(f"{path} unpacks to more than {MAX_FILE_BYTES} bytes: {_REDO}")
    out: dict[str, object] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for key in _MEMBERS:
                out[key] = npz[key]
    except ValueError as e:
        if "pickle" in str(e):
            raise CalibrationError(
                f"{path} holds pickled Python objects, which are never loaded: {_REDO}"
            ) from e
        raise CalibrationError(f"{path} is damaged ({e}): {_REDO}") from e
    except Exception as e:  # zlib, zipfile, EOF, header parsing: a damaged file all the same
        raise CalibrationError(f"{path} is damaged ({type(e).__name__}): {_REDO}") from e
    return out


def _scalar(value: object, what: str, kind: str) -> int | str:
    if not isinstance(value, np.ndarray) or value.shape != () or value.dtype.kind != kind:
        raise CalibrationError(f"the file's {what} is malformed: {_REDO}")
    item = value.item()
    return int(item) if kind == "i" else str(item)


def load_calibration(path: Path, positions_m: F64 | None = None) -> ArrayCalibration:
    """The validated calibration at `path`, for the layout `positions_m` if given.

    Every problem raises CalibrationError (a ValueError), including a missing or unreadable
    file (the OSError is wrapped, kept as __cause__) and a layout mismatch ("made for another
    array"); nothing else escapes for any file content."""
    path = Path(path)
    members = _members(_read(path), path)
    version = _scalar(members["format"], "format version", "i")
    if version != FORMAT_VERSION:
        raise CalibrationError(
            f"{path} is calibration format {version}; this edge-recorder reads format "
            f"{FORMAT_VERSION}: {_REDO}"
        )
    rate = _scalar(members["rate"], "rate", "i")
    created = _scalar(members["created"], "creation time", "U")
    positions, names = members["positions_m"], members["names"]
    h, psi, arrivals = members["h"], members["psi"], members["arrivals_s"]
    if not isinstance(positions, np.ndarray) or positions.ndim != 2:
        raise CalibrationError(f"the file's mic layout is malformed: {_REDO}")
    if not isinstance(names, np.ndarray) or names.dtype.kind != "U" or names.ndim != 1:
        raise CalibrationError(f"the file's spot names are malformed: {_REDO}")
    k = names.shape[0]
    if not 1 <= k <= MAX_SPOTS:
        raise CalibrationError(f"{k} spots: a calibration holds 1 to {MAX_SPOTS}: {_REDO}")
    m = positions.shape[0]
    _array(h, "h", np.complex128, (k, BINS, m))
    _array(psi, "Ψ", np.complex128, (k, BINS, m, m))
    _array(arrivals, "the arrival times", np.float64, (k, m))
    assert isinstance(h, np.ndarray) and isinstance(psi, np.ndarray)
    assert isinstance(arrivals, np.ndarray)
    spots = tuple(
        Spot(name=str(names[i]), h=h[i], psi=psi[i], arrivals_s=arrivals[i]) for i in range(k)
    )
    calibration = ArrayCalibration(
        spots=spots, positions_m=positions, rate=int(rate), created=str(created)
    )
    check_calibration(calibration)
    if positions_m is not None:
        check_layout(calibration, positions_m)
    return calibration


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SPOTS",
    "ArrayCalibration",
    "CalibrationError",
    "Spot",
    "check_calibration",
    "check_layout",
    "load_calibration",
    "save_calibration",
]
