"""Where `calibrate-array measure` keeps a spot's measurements until `finish` pools them:
one NAME-<n>.npz per measurement (the responses, the mic layout they were made with, the sweep
SNR) in the calibration directory. Apart from the command so its checks (bounded size, no
pickle, the layout) are one place, and the files end up readable by the service user.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

SPOT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_MEASUREMENT_BYTES = 8 * 1024 * 1024  # one (M ≤ 8, ≤ 1 s) response set is ~100 kB
MAX_MEASUREMENTS = 64  # per spot


def measurements(directory: Path) -> dict[str, list[Path]]:
    """NAME-<n>.npz files under `directory` by spot name, in measurement order."""
    found: dict[str, list[tuple[int, Path]]] = {}
    if directory.is_dir():
        for path in directory.glob("*.npz"):
            match = re.fullmatch(r"(.+)-(\d{1,4})\.npz", path.name)
            if match and SPOT_NAME.fullmatch(match[1]):
                found.setdefault(match[1], []).append((int(match[2]), path))
    return {name: [p for _, p in sorted(items)] for name, items in found.items()}


def store_measurement(
    directory: Path, spot: str, responses: F64, positions: F64, snr: float
) -> Path:
    """NAME-<n>.npz with the next free n, written whole (temp file, then rename)."""
    import os

    import numpy as np

    from edge_recorder.audio.array.calibration_file import CalibrationError

    taken = measurements(directory).get(spot, [])
    if len(taken) >= MAX_MEASUREMENTS:
        raise CalibrationError(
            f"{spot} has {len(taken)} measurements already: delete some in {directory}"
        )
    number = 1 + max((int(p.stem.rsplit("-", 1)[1]) for p in taken), default=0)
    path = directory / f"{spot}-{number}.npz"
    tmp = directory / f".{spot}-{number}.tmp.npz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            np.savez(f, responses=responses, positions_m=positions, snr_db=np.float64(snr))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        hand_over(path)
    except OSError as exc:
        raise CalibrationError(f"cannot store the measurement in {directory}: {exc}") from None
    return path


def hand_over(path: Path) -> None:
    """Readable by the service: 0640, and (run with sudo) owned like its directory, which
    is the service user's state directory. Else the daemon, not root, could not read it
    and would run its fallback."""
    import os

    path.chmod(0o640)
    folder = path.parent.stat()
    if os.geteuid() == 0 and path.stat().st_uid != folder.st_uid:
        os.chown(path, folder.st_uid, folder.st_gid)


def load_measurement(path: Path, positions: F64) -> F64:
    """One stored response set, checked: its size, shape and the array it was made with."""
    import numpy as np

    from edge_recorder.audio.array.calibration_file import CalibrationError

    if path.stat().st_size > MAX_MEASUREMENT_BYTES:
        raise CalibrationError(f"{path} is too large to be a measurement: delete it")
    try:
        with np.load(path, allow_pickle=False) as data:
            responses = np.asarray(data["responses"], np.float64)
            made_on = np.asarray(data["positions_m"], np.float64)
    except Exception as exc:  # not an npz (BadZipFile), a .npy, missing keys: all the same
        raise CalibrationError(f"{path} is not a measurement ({exc!r}): delete it") from None
    if made_on.shape != positions.shape or np.max(np.abs(made_on - positions)) > 0.002:
        raise CalibrationError(
            f"{path} was measured with another mic layout than audio.mic_positions_mm: "
            "measure again or delete it"
        )
    if responses.ndim != 2 or responses.shape[0] != positions.shape[0]:
        raise CalibrationError(f"{path}: responses of shape {responses.shape}: delete it")
    if not np.all(np.isfinite(responses)):
        raise CalibrationError(f"{path} holds non-finite values: delete it")
    return responses
