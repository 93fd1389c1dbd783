"""`edge-recorder calibrate-array` end to end as real processes, on a simulated exam room
(pyroomacoustics): the sweep played at a spot and 5 cm beside it, measured from WAVs, finished
into a calibration file, shown, and used by `record`; and what it refuses."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from devtools.farfield import geometry
from edge_recorder.audio.array.calibration_file import load_calibration, save_calibration
from edge_recorder.audio.array.spots import sweep
from edge_recorder.commands.check import calibration_rows
from edge_recorder.config.loader import build_config
from tests.conftest import RunCli

F64 = npt.NDArray[np.float64]
SQUARE_MM = [(22.85, 22.85, 0.0), (-22.85, 22.85, 0.0), (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)]
BOARD_M = np.array(SQUARE_MM) / 1000.0
SPOT_M = (2.6, 1.5, 1.2)  # the exam table: 1.6 m out, 0.6 m along the wall, below the device
BESIDE_M = (2.64, 1.53, 1.2)  # 5 cm from it
CHAIR_M = (0.9, 2.2, 1.1)  # the patient chair: another spot, ~50° away as the device sees it
GEOMETRY = f"channels = 4\nmic_positions_mm = {[list(p) for p in SQUARE_MM]}\n"


def room_recording(source_m: tuple[float, float, float], signal: F64, seed: int) -> F64:
    """(N, 4) what the 4-mic board on the wall hears of `signal` played at `source_m`
    (RT60 0.3 s), with a little sensor noise, at 16 kHz."""
    pra: Any = importlib.import_module("pyroomacoustics")
    absorption, order = pra.inverse_sabine(0.3, list(geometry.ROOM_M))
    room = pra.ShoeBox(
        list(geometry.ROOM_M), fs=16000, materials=pra.Material(absorption), max_order=order
    )
    room.add_source(list(source_m), signal=signal)
    room.add_microphone_array(geometry.board_to_room(BOARD_M).T)
    room.simulate()
    x = np.asarray(room.mic_array.signals[:, : signal.size], np.float64)
    x += 1e-4 * np.random.default_rng(seed).standard_normal(x.shape)
    return x.T


def write_48k(path: Path, x: F64) -> Path:
    """As a capture would deliver it: 48 kHz, 24-bit, peak at -6 dBFS."""
    up = soxr.resample(x, 16000, 48000)
    soundfile.write(path, 0.5 * up / np.max(np.abs(up)), 48000, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sweep (5 s, starting 1.3 s in: no sync with the player) at the spot and beside it,
    and a noise-only recording."""
    folder = tmp_path_factory.mktemp("room")
    played = np.concatenate([np.zeros(20800), 0.3 * sweep(5.0), np.zeros(32000)])
    noise = np.random.default_rng(9).standard_normal((played.size, 4))
    return {
        "spot": write_48k(folder / "spot.wav", room_recording(SPOT_M, played, 1)),
        "beside": write_48k(folder / "beside.wav", room_recording(BESIDE_M, played, 2)),
        "chair": write_48k(folder / "chair.wav", room_recording(CHAIR_M, played, 3)),
        "noise": write_48k(folder / "noise.wav", noise),
    }


def write_config(folder: Path, extra: str = "") -> Path:
    config = folder / "config.toml"
    config.write_text(f"[audio]\n{GEOMETRY}{extra}")
    return config


def expected_direction() -> tuple[float, float]:
    """The spot's azimuth and elevation in the board's frame (x along the wall, y up, z out)."""
    off = np.subtract(SPOT_M, geometry.DEVICE_M)
    u = np.array([off[0], off[2], off[1]]) / np.linalg.norm(off)
    return math.degrees(math.atan2(u[1], u[0])) % 360, math.degrees(math.asin(u[2]))


def test_sweep_measure_finish_show_and_record(
    run_cli: RunCli, wavs: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    played = tmp_path / "sweep.wav"
    result = run_cli("calibrate-array", "sweep", str(played))
    assert result.returncode == 0, result.stderr
    data, rate = soundfile.read(played, dtype="float64")
    info = soundfile.info(str(played))
    assert (rate, info.channels, info.subtype, data.size) == (16000, 1, "PCM_16", 80000)
    assert 20 * math.log10(np.max(np.abs(data))) == pytest.approx(-3.0, abs=0.01)

    measured = tmp_path / "measured"
    common = ("--dir", str(measured), "--config", str(config))
    first = run_cli("calibrate-array", "measure", "--spot", "exam-table", "--from-wav",
                    str(wavs["spot"]), *common)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (measured / "exam-table-1.npz").is_file()
    found = re.search(r"azimuth (\d+)°, elevation (\d+)°", first.stdout)
    assert found is not None, first.stdout
    azimuth, elevation = expected_direction()
    assert abs((int(found[1]) - azimuth + 180) % 360 - 180) <= 10
    assert abs(int(found[2]) - elevation) <= 10
    snr = re.search(r"sweep SNR: ([\d.]+) dB", first.stdout)
    assert snr is not None and float(snr[1]) > 25 and "advice" not in first.stdout
    second = run_cli("calibrate-array", "measure", "--spot", "exam-table", "--from-wav",
                     str(wavs["beside"]), *common)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert (measured / "exam-table-2.npz").is_file()
    assert "warning" not in second.stdout  # 5 cm beside it: the same spot

    out = tmp_path / "room.npz"
    finish = run_cli("calibrate-array", "finish", "--out", str(out), *common)
    assert finish.returncode == 0, finish.stderr
    assert 'array_processing = "calibrated"' in finish.stdout
    assert f'array_calibration = "{out}"' in finish.stdout
    assert "exam-table       2 measurement(s)" in finish.stdout
    assert out.stat().st_mode & 0o777 == 0o640  # the service user's group can read it
    calibration = load_calibration(out, BOARD_M)
    assert [s.name for s in calibration.spots] == ["exam-table"]

    show = run_cli("calibrate-array", "show", str(out), "--config", str(config))
    assert show.returncode == 0, show.stderr
    assert "valid for this array (4 mics), 1 spot(s)" in show.stdout
    assert "exam-table" in show.stdout

    outputs = {}
    for kind in ("calibrated", "mvdr-wpe-postfilter"):
        use = write_config(
            tmp_path,
            f'source = "wav"\nwav_path = "{wavs["spot"]}"\nspeed = 0\n'
            f'array_processing = "{kind}"\narray_calibration = "{out}"\n',
        )
        wav = tmp_path / f"{kind}.wav"
        record = run_cli("record", "--seconds", "6", str(wav), "--config", str(use))
        assert record.returncode == 0, record.stderr
        assert "array calibration not used" not in record.stderr
        assert f"mics:     {kind}\n" in record.stdout  # record says which beam ran
        outputs[kind], _ = soundfile.read(wav, dtype="int16")
    assert outputs["calibrated"].size == 6 * 16000
    assert np.abs(outputs["calibrated"]).max() > 1000  # the sweep came through
    # the calibrated beam is on, not the blind fallback
    assert not np.array_equal(outputs["calibrated"], outputs["mvdr-wpe-postfilter"])


def test_show_refuses_another_layout_and_a_missing_file(run_cli: RunCli, tmp_path: Path) -> None:
    from tests.unit.audio.test_array_stage_calibration import calibration

    path = tmp_path / "room.npz"
    save_calibration(path, calibration())
    wide = [[x * 1.5, y, z] for x, y, z in SQUARE_MM]
    config = tmp_path / "wide.toml"
    config.write_text(f"[audio]\nchannels = 4\nmic_positions_mm = {wide}\n")
    refused = run_cli("calibrate-array", "show", str(path), "--config", str(config))
    assert refused.returncode == 1
    assert "made for another array" in refused.stderr and "Traceback" not in refused.stderr
    missing = run_cli("calibrate-array", "show", str(tmp_path / "none.npz"),
                      "--config", str(write_config(tmp_path)))  # fmt: skip
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_measure_refusals(run_cli: RunCli, wavs: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path)
    common = ("--dir", str(tmp_path / "m"), "--config", str(config))
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.zeros((32000, 2)), 16000)
    too_few = run_cli("calibrate-array", "measure", "--spot", "chair", "--from-wav",
                      str(stereo), *common)  # fmt: skip
    assert too_few.returncode == 1
    assert "has 2 channel(s); the array has 4 mics" in too_few.stderr

    silent = run_cli("calibrate-array", "measure", "--spot", "chair", "--from-wav",
                     str(wavs["noise"]), *common)  # fmt: skip
    assert silent.returncode == 1 and "no sweep heard" in silent.stderr

    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros((61 * 8000, 4), np.int16), 8000)
    too_long = run_cli("calibrate-array", "measure", "--spot", "chair", "--from-wav",
                       str(long), *common)  # fmt: skip
    assert too_long.returncode == 1 and "61.0 s long" in too_long.stderr

    for name in ("Exam Table", "../etc", "a" * 33, "-x"):
        bad = run_cli("calibrate-array", "measure", f"--spot={name}", "--from-wav",
                      str(wavs["spot"]), *common)  # fmt: skip
        assert bad.returncode == 2 and "spot name" in bad.stderr, name
    assert not (tmp_path / "m").exists()  # nothing stored by a refusal

    no_geometry = tmp_path / "mono.toml"
    no_geometry.write_text("[audio]\nchannels = 1\n")
    geometry_missing = run_cli("calibrate-array", "measure", "--spot", "chair", "--from-wav",
                               str(wavs["spot"]), "--config", str(no_geometry))  # fmt: skip
    assert geometry_missing.returncode == 78 and "audio.mic_positions_mm" in geometry_missing.stderr


def test_finish_refuses_nothing_measured_and_foreign_measurements(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    empty = run_cli("calibrate-array", "finish", "--dir", str(tmp_path / "m"),
                    "--out", str(tmp_path / "c.npz"), "--config", str(config))  # fmt: skip
    assert empty.returncode == 1 and "no measurements" in empty.stderr
    folder = tmp_path / "m"
    folder.mkdir()
    np.savez(folder / "chair-1.npz", responses=np.zeros((4, 9680)), positions_m=BOARD_M * 2)
    foreign = run_cli("calibrate-array", "finish", "--dir", str(folder),
                      "--out", str(tmp_path / "c.npz"), "--config", str(config))  # fmt: skip
    assert foreign.returncode == 1 and "another mic layout" in foreign.stderr
    (folder / "chair-1.npz").write_bytes(b"PK\x03\x04 cut short")
    damaged = run_cli("calibrate-array", "finish", "--dir", str(folder),
                      "--out", str(tmp_path / "c.npz"), "--config", str(config))  # fmt: skip
    assert damaged.returncode == 1 and "is not a measurement" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert not (tmp_path / "c.npz").exists()


def test_check_shows_whether_the_calibration_is_used(tmp_path: Path) -> None:
    from tests.unit.audio.test_array_stage_calibration import calibration

    path = tmp_path / "room.npz"
    tree = {
        "audio": {
            "channels": 4,
            "mic_positions_mm": SQUARE_MM,
            "array_processing": "calibrated",
            "array_calibration": str(path),
        }
    }
    missing = calibration_rows(build_config(tree, environ={}))
    assert [(r.name, r.status) for r in missing] == [("array calibration", "warn")]
    assert missing[0].detail.startswith(f"not used: {path} does not exist")
    assert missing[0].detail.endswith("; using mvdr-wpe-postfilter")
    save_calibration(path, calibration())
    used = calibration_rows(build_config(tree, environ={}))
    assert [(r.name, r.status) for r in used] == [("array calibration", "ok")]
    assert "exam-table" in used[0].detail
    tree["audio"]["array_processing"] = "mvdr"
    assert calibration_rows(build_config(tree, environ={})) == []


def test_a_point_measured_at_another_spot_is_flagged(
    run_cli: RunCli, wavs: dict[str, Path], tmp_path: Path
) -> None:
    """The chair's sweep stored under the exam table's name would be pooled into its
    statistics: `measure` says so and names the file to delete."""
    common = ("--dir", str(tmp_path / "m"), "--config", str(write_config(tmp_path)))
    for wav in ("spot", "chair"):
        done = run_cli("calibrate-array", "measure", "--spot", "exam-table", "--from-wav",
                       str(wavs[wav]), *common)  # fmt: skip
        assert done.returncode == 0, done.stderr
    found = re.search(r"warning: this point is (\d+)° from exam-table-1\.npz", done.stdout)
    assert found is not None, done.stdout
    assert int(found[1]) > 30
    assert f"delete {tmp_path / 'm' / 'exam-table-2.npz'}" in done.stdout


def test_measure_refuses_a_take_with_a_dead_mic(
    run_cli: RunCli, wavs: dict[str, Path], tmp_path: Path
) -> None:
    """Its response would be learnt into the spot, and be wrong once the mic is fixed."""
    take, rate = soundfile.read(wavs["spot"], dtype="float64")
    take[:, 1] *= 0.05  # a port blocked by paint: 26 dB down
    blocked = tmp_path / "blocked.wav"
    soundfile.write(blocked, take, rate, subtype="PCM_24")
    common = ("--dir", str(tmp_path / "m"), "--config", str(write_config(tmp_path)))
    result = run_cli("calibrate-array", "measure", "--spot", "exam-table", "--from-wav",
                     str(blocked), *common)  # fmt: skip
    assert result.returncode == 1
    assert "mic 2 of 4 weak (-26 dB): a calibration needs every mic working" in result.stderr
    assert not (tmp_path / "m").exists()  # nothing stored
