"""The array calibration file (edge_recorder/audio/array/calibration_file.py): what is saved
loads back exactly; every kind of bad file is refused with a CalibrationError naming the
problem (never another exception); saving is atomic and never clobbers the old file."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge_recorder.audio.array.calibration_file import (
    MAX_FILE_BYTES,
    MAX_SPOTS,
    ArrayCalibration,
    CalibrationError,
    Spot,
    load_calibration,
    save_calibration,
)
from edge_recorder.audio.array.geometry import arrival_times, direction
from tests.unit.audio.test_array_beams import FOUR, SIX

F64 = npt.NDArray[np.float64]
FREQS = np.arange(257) * 16000 / 512


def spot(name: str, azimuth: float, positions: F64 = FOUR) -> Spot:
    """A plausible spot: free-field h from a direction, Ψ = h hᴴ + a diffuse part."""
    arrivals = arrival_times(positions, direction(azimuth, 40))
    h = np.exp(-2j * np.pi * np.outer(FREQS, arrivals))
    psi = h[:, :, None] * h[:, None, :].conj() + 0.3 * np.eye(positions.shape[0])
    return Spot(name=name, h=h, psi=psi, arrivals_s=arrivals)


def calibration(count: int = 2, positions: F64 = FOUR) -> ArrayCalibration:
    spots = tuple(spot(f"spot-{k}", 30.0 * k, positions) for k in range(count))
    return ArrayCalibration(spots, positions.copy(), 16000, "2026-12-06T21:30:00+00:00")


def arrays(cal: ArrayCalibration) -> dict[str, Any]:
    """The file's members, for tests that write a damaged one."""
    return {
        "format": np.array(1, np.int64),
        "rate": np.array(cal.rate, np.int64),
        "created": np.array(cal.created),
        "positions_m": cal.positions_m,
        "names": np.array([s.name for s in cal.spots]),
        "h": np.stack([s.h for s in cal.spots]),
        "psi": np.stack([s.psi for s in cal.spots]),
        "arrivals_s": np.stack([s.arrivals_s for s in cal.spots]),
    }


def write(path: Path, **changes: Any) -> Path:
    members = arrays(calibration()) | changes
    np.savez(path, **{k: v for k, v in members.items() if v is not None})
    return path


def test_a_calibration_round_trips_exactly(tmp_path: Path) -> None:
    cal = calibration(3)
    path = tmp_path / "cal.npz"
    save_calibration(path, cal)
    back = load_calibration(path, FOUR)
    assert back.rate == 16000 and back.created == cal.created
    assert [s.name for s in back.spots] == ["spot-0", "spot-1", "spot-2"]
    np.testing.assert_array_equal(back.positions_m, cal.positions_m)
    for got, want in zip(back.spots, cal.spots, strict=True):
        np.testing.assert_array_equal(got.h, want.h)
        np.testing.assert_array_equal(got.psi, want.psi)
        np.testing.assert_array_equal(got.arrivals_s, want.arrivals_s)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.npz"]  # no temp file left
    with np.load(path, allow_pickle=False) as data:  # plain arrays, nothing pickled
        assert data["h"].dtype == np.complex128


def test_files_that_are_not_calibrations_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("not a calibration\n")
    bare = tmp_path / "bare.npz"
    with bare.open("wb") as f:
        np.save(f, np.zeros(3))
    for path in (text, bare):
        with pytest.raises(CalibrationError, match="not an npz archive"):
            load_calibration(path)
    good = tmp_path / "good.npz"
    save_calibration(good, calibration())
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        truncated = tmp_path / f"cut{cut}.npz"
        truncated.write_bytes(data[:cut])
        with pytest.raises(CalibrationError, match=r"not an npz archive|damaged"):
            load_calibration(truncated)
    big = tmp_path / "big.npz"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(CalibrationError, match="larger than 8 MiB"):
        load_calibration(big)
    extra = write(tmp_path / "extra.npz", notes=np.zeros(2))
    with pytest.raises(CalibrationError, match="not a calibration file this edge-recorder reads"):
        load_calibration(extra)
    missing = write(tmp_path / "missing.npz", psi=None)
    with pytest.raises(CalibrationError, match="members"):
        load_calibration(missing)


def test_a_missing_file_is_a_calibration_error_that_keeps_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read") as caught:
        load_calibration(tmp_path / "nowhere.npz")
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    names = np.empty(2, object)
    names[:] = ["spot-0", "spot-1"]
    path = write(tmp_path / "pickle.npz", names=names)
    with pytest.raises(CalibrationError, match="pickled Python objects"):
        load_calibration(path)


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="format 2; this edge-recorder reads format 1"):
        load_calibration(write(tmp_path / "v2.npz", format=np.array(2, np.int64)))
    with pytest.raises(CalibrationError, match="format version is malformed"):
        load_calibration(write(tmp_path / "vs.npz", format=np.array("1")))
    with pytest.raises(CalibrationError, match="at 8000 Hz"):
        load_calibration(write(tmp_path / "8k.npz", rate=np.array(8000, np.int64)))


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("h", np.zeros((2, 129, 4), np.complex128), r"h must have shape \(2, 257, 4\)"),
        ("h", np.zeros((2, 257, 4), np.complex64), "h must be complex128"),
        ("psi", np.zeros((2, 257, 4, 3), np.complex128), r"Ψ must have shape"),
        ("arrivals_s", np.zeros((2, 4), np.float32), "arrival times must be float64"),
        ("positions_m", np.zeros((4, 2)), "mic layout must be float64|shape"),
        ("positions_m", np.zeros(4), "mic layout is malformed"),
        ("names", np.array([1, 2]), "spot names are malformed"),
        ("created", np.array("yesterday"), "not ISO-8601"),
    ],
)
def test_wrong_shapes_and_dtypes_are_refused(
    tmp_path: Path, member: str, value: npt.NDArray[Any], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        load_calibration(write(tmp_path / "bad.npz", **{member: value}))


def test_non_finite_values_and_non_hermitian_psi_are_refused(tmp_path: Path) -> None:
    good = arrays(calibration())
    psi = good["psi"].copy()
    psi[1, 100, 2, 2] = np.nan
    with pytest.raises(CalibrationError, match="NaN or infinite"):
        load_calibration(write(tmp_path / "nan.npz", psi=psi))
    h = good["h"].copy()
    h[0, 5, 0] = np.inf
    with pytest.raises(CalibrationError, match="NaN or infinite"):
        load_calibration(write(tmp_path / "inf.npz", h=h))
    psi = good["psi"].copy()
    psi[0, 40, 0, 1] += 0.01  # no longer equal to the conjugate of [1, 0]
    with pytest.raises(CalibrationError, match="Ψ of spot spot-0 is not a covariance"):
        load_calibration(write(tmp_path / "asym.npz", psi=psi))
    psi = good["psi"].copy()
    psi[1, 40, 3, 3] = -1.0
    with pytest.raises(CalibrationError, match="Ψ of spot spot-1 is not a covariance"):
        load_calibration(write(tmp_path / "negative.npz", psi=psi))
    arrivals = good["arrivals_s"].copy()
    arrivals[0, 0] = 0.01
    with pytest.raises(CalibrationError, match="arrival times of spot spot-0 are implausible"):
        load_calibration(write(tmp_path / "far.npz", arrivals_s=arrivals))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["Exam Table", "bed"], "'Exam Table' is not valid"),
        (["", "bed"], "'' is not valid"),
        (["a" * 33, "bed"], "is not valid"),
        (["bed", "bed"], "must be unique, bed repeats"),
    ],
)
def test_bad_or_duplicate_names_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        load_calibration(write(tmp_path / "names.npz", names=np.array(names)))
    cal = calibration()
    spots = tuple(dataclasses.replace(s, name=n) for s, n in zip(cal.spots, names, strict=True))
    with pytest.raises(CalibrationError, match=message):
        save_calibration(tmp_path / "never.npz", dataclasses.replace(cal, spots=spots))
    assert not (tmp_path / "never.npz").exists()


def test_too_many_or_no_spots_are_refused(tmp_path: Path) -> None:
    many = calibration(MAX_SPOTS + 1)
    members = arrays(many)
    np.savez(tmp_path / "many.npz", **members)
    with pytest.raises(CalibrationError, match="17 spots: a calibration holds 1 to 16"):
        load_calibration(tmp_path / "many.npz")
    with pytest.raises(CalibrationError, match="17 spots"):
        save_calibration(tmp_path / "x.npz", many)
    with pytest.raises(CalibrationError, match="0 spots"):
        save_calibration(tmp_path / "x.npz", dataclasses.replace(many, spots=()))
    save_calibration(tmp_path / "sixteen.npz", calibration(MAX_SPOTS))  # the most allowed
    assert len(load_calibration(tmp_path / "sixteen.npz").spots) == MAX_SPOTS


def test_a_calibration_for_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cal.npz"
    save_calibration(path, calibration())
    nudged = FOUR.copy()
    nudged[2, 0] += 0.0015  # 1.5 mm: the same board, measured again
    assert len(load_calibration(path, nudged).spots) == 2
    nudged[2, 0] += 0.0015  # 3 mm: another mounting
    with pytest.raises(CalibrationError, match=r"made for another array \(mic 3 is 3\.0 mm away"):
        load_calibration(path, nudged)
    with pytest.raises(CalibrationError, match=r"made for another array \(4 mics, this one has 6"):
        load_calibration(path, SIX)
    with pytest.raises(CalibrationError, match="made for another array"):
        load_calibration(path, FOUR * np.nan)


def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cal.npz"
    save_calibration(path, calibration(2))
    before = path.read_bytes()

    def half_then_fail(f: io.BufferedWriter, **_: Any) -> None:
        f.write(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_calibration(path, calibration(3))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.npz"]
    assert len(load_calibration(path).spots) == 2

    def fsync_fails(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="Input/output"):
        save_calibration(path, calibration(3))
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["cal.npz"]
    save_calibration(path, calibration(3))  # and a good save replaces it
    assert len(load_calibration(path).spots) == 3
