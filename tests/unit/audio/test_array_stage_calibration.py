"""`audio.array_processing = "calibrated"` in the array stage: the calibration file is read once
per version, a missing or refused one runs the blind fallback (exactly, bit for bit) and says
why (ArrayMix.note, one WARNING per reason, the device status), a new one is picked up at the
next recording."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge_recorder.audio.array import make_array_processor
from edge_recorder.audio.array import stage as stage_module
from edge_recorder.audio.array.calibration_file import (
    ArrayCalibration,
    Spot,
    load_calibration,
    save_calibration,
)
from edge_recorder.audio.array.geometry import arrival_times, direction
from edge_recorder.audio.array.stage import (
    CALIBRATION_WARNING,
    ArrayMix,
    calibration_note,
    last_calibration_note,
)
from edge_recorder.audio.frames import AudioFormat
from edge_recorder.config.model import AudioConfig
from tests.unit.app.test_recorder import make
from tests.unit.audio.test_array_stream import talk

F32 = npt.NDArray[np.float32]
SQUARE_MM = [(22.85, 22.85, 0.0), (-22.85, 22.85, 0.0), (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)]
POSITIONS = np.array(SQUARE_MM) / 1000.0
FMT = AudioFormat(16000, 4, "S16_LE")
SCALE = 1.0 / 32768


@pytest.fixture(autouse=True)
def _fresh_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing cached, logged or reported (module state)."""
    monkeypatch.setattr(stage_module, "_loaded", {})
    monkeypatch.setattr(stage_module, "_warned", set())
    monkeypatch.setattr(stage_module, "_last_note", [None])


def calibration(name: str = "exam-table", azimuth: float = 40.0) -> ArrayCalibration:
    """A valid calibration: a free-field spot (h the plane wave, Ψ = hhᴴ + 0.1 I)."""
    freqs = np.arange(257) * 16000 / 512
    arrivals = arrival_times(POSITIONS, direction(azimuth, 25))
    h = np.exp(-2j * np.pi * np.outer(freqs, arrivals))
    psi = h[:, :, None] * h[:, None, :].conj() + 0.1 * np.eye(4)
    spot = Spot(name=name, h=h, psi=psi.astype(np.complex128), arrivals_s=arrivals)
    return ArrayCalibration((spot,), POSITIONS.copy(), 16000, "2026-12-06T20:00:00Z")


def config(path: Path, **changes: object) -> AudioConfig:
    fields: dict[str, object] = {
        "channels": 4,
        "mic_positions_mm": SQUARE_MM,
        "array_processing": "calibrated",
        "array_calibration": path,
        "array_batch_hops": 2,
        **changes,
    }
    return AudioConfig.model_validate(fields)


def run(mix: ArrayMix, x: F32) -> F32:
    """The stage over `x` in uneven blocks, flushed: the recording's output."""
    out, cuts = [], [0, 1000, 1337, 5000, x.shape[0]]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        out.append(mix.shape(x[a:b], last=i == len(cuts) - 2))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def speech() -> F32:
    return talk(POSITIONS, 1.0, seed=3)


def blind(kind: str, x: F32) -> F32:
    return run(ArrayMix(config(Path("unused"), array_processing=kind), FMT, SCALE, 16000), x)


@pytest.mark.parametrize("fallback", ["mvdr-wpe-postfilter", "mvdr", "average"])
def test_a_missing_file_runs_the_fallback_bit_for_bit_and_says_why(
    tmp_path: Path, speech: F32, fallback: str
) -> None:
    path = tmp_path / "none.npz"
    mix = ArrayMix(config(path, array_calibration_fallback=fallback), FMT, SCALE, 16000)
    assert mix.kind_used == fallback
    assert mix.note is not None
    assert mix.note.startswith(f"array calibration not used: {path} does not exist")
    assert mix.note.endswith(f"; using {fallback}")
    assert np.array_equal(run(mix, speech), blind(fallback, speech))


def test_a_damaged_file_runs_the_fallback_and_names_the_problem(
    tmp_path: Path, speech: F32
) -> None:
    path = tmp_path / "room.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    mix = ArrayMix(config(path), FMT, SCALE, 16000)
    assert mix.kind_used == "mvdr-wpe-postfilter"
    assert mix.note is not None and "not a calibration file" in mix.note
    assert np.array_equal(run(mix, speech), blind("mvdr-wpe-postfilter", speech))


def test_a_calibration_of_another_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "room.npz"
    save_calibration(path, calibration())
    moved = [(x * 1.2, y, z) for x, y, z in SQUARE_MM]  # a wider board: 4.5 mm off
    mix = ArrayMix(config(path, mic_positions_mm=moved), FMT, SCALE, 16000)
    assert mix.kind_used == "mvdr-wpe-postfilter"
    assert mix.note is not None and "another array" in mix.note


def test_a_valid_file_runs_the_calibrated_beam(tmp_path: Path, speech: F32) -> None:
    path = tmp_path / "room.npz"
    save_calibration(path, calibration())
    mix = ArrayMix(config(path), FMT, SCALE, 16000)
    assert (mix.kind_used, mix.note) == ("calibrated", None)
    out = run(mix, speech)
    beam = make_array_processor(
        "calibrated", POSITIONS, 16000, batch=2, calibration=load_calibration(path, POSITIONS)
    )
    direct = np.concatenate(
        [
            beam.process(speech.astype(np.float32)),
            beam.process(np.zeros((beam.delay_samples, 4), np.float32)),
        ]
    )[beam.delay_samples :]
    # the stage DC-removes first; without it the two are the same processor on the same input
    assert out.shape == (speech.shape[0],) and np.any(out != 0)
    assert not np.array_equal(out, blind("mvdr-wpe-postfilter", speech))
    plain = ArrayMix(config(path, dc_removal=False), FMT, SCALE, 16000)
    assert np.array_equal(run(plain, speech), direct)


def test_the_file_is_read_once_per_version_and_a_new_one_is_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "room.npz"
    save_calibration(path, calibration("exam-table"))
    reads: list[Path] = []

    def counting(p: Path, positions: npt.NDArray[np.float64] | None = None) -> ArrayCalibration:
        reads.append(p)
        return load_calibration(p, positions)

    monkeypatch.setattr(stage_module, "load_calibration", counting)
    for _ in range(3):  # three recordings: one read
        assert ArrayMix(config(path), FMT, SCALE, 16000).kind_used == "calibrated"
    assert reads == [path]
    save_calibration(path, calibration("patient-chair", azimuth=120.0))  # atomic replace
    assert ArrayMix(config(path), FMT, SCALE, 16000).kind_used == "calibrated"
    assert len(reads) == 2
    calibrated, _ = stage_module.load_array_calibration(path, POSITIONS)
    assert calibrated is not None and [s.name for s in calibrated.spots] == ["patient-chair"]
    path.unlink()  # removed: the next recording falls back at once
    assert ArrayMix(config(path), FMT, SCALE, 16000).kind_used == "mvdr-wpe-postfilter"


def test_each_reason_is_logged_once_without_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_recorder")
    missing, damaged = tmp_path / "none.npz", tmp_path / "bad.npz"
    damaged.write_bytes(b"junk")
    for path in (missing, missing, damaged, damaged, missing):
        ArrayMix(config(path), FMT, SCALE, 16000)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["array calibration not used"] * 2
    message = warnings[0].getMessage()
    assert str(missing) in message and "using mvdr-wpe-postfilter" in message
    assert str(damaged) in warnings[1].getMessage()
    good = tmp_path / "good.npz"
    save_calibration(good, calibration())
    ArrayMix(config(good), FMT, SCALE, 16000)
    ArrayMix(config(missing), FMT, SCALE, 16000)  # back after a fix: news again
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3
    assert any(r.getMessage() == "array calibration loaded" for r in caplog.records)


def test_check_and_start_up_see_the_same_note(tmp_path: Path) -> None:
    path = tmp_path / "none.npz"
    assert calibration_note(config(path, array_processing="mvdr")) is None
    assert last_calibration_note() is None
    note = calibration_note(config(path))
    assert note is not None and note == last_calibration_note()
    assert note == ArrayMix(config(path), FMT, SCALE, 16000).note
    save_calibration(path, calibration())
    assert calibration_note(config(path)) is None and last_calibration_note() is None


async def test_the_device_status_carries_the_fallback_warning(tmp_path: Path) -> None:
    recorder, *_ = make()
    assert CALIBRATION_WARNING not in recorder.status().warnings
    ArrayMix(config(tmp_path / "none.npz"), FMT, SCALE, 16000)
    assert CALIBRATION_WARNING in recorder.status().warnings
    assert len(CALIBRATION_WARNING) <= 64  # the MQTT status schema's limit
    path = tmp_path / "room.npz"
    save_calibration(path, calibration())
    ArrayMix(config(path), FMT, SCALE, 16000)
    assert CALIBRATION_WARNING not in recorder.status().warnings


def test_the_dsp_stage_names_the_kind_that_runs_and_why(tmp_path: Path) -> None:
    """What `record` prints as "mics:": the fallback and its reason, or the plain mix."""
    from edge_recorder.audio.dsp import Dsp

    dsp = Dsp(config(tmp_path / "none.npz"), FMT)
    assert dsp.array_kind == "mvdr-wpe-postfilter"
    assert dsp.array_note is not None and "does not exist" in dsp.array_note
    plain = Dsp(config(tmp_path / "none.npz", array_processing="average"), FMT)
    assert (plain.array_kind, plain.array_note) == ("average", None)
