"""`edge-recorder array-check` end to end as real processes, on a simulated exam room
(pyroomacoustics): the test voice written, played at the exam table by a loudspeaker whose
clock runs 70 ppm fast, with a fan and the room's hiss, and the take scored kind by kind
from a WAV; and what it refuses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from devtools.farfield import noise
from devtools.farfield.shipped import synthetic_calibration
from edge_recorder.audio.array import KINDS
from edge_recorder.audio.array.calibration_file import save_calibration
from edge_recorder.audio.array.testvoice import synthetic_voice
from tests.conftest import RunCli
from tests.unit.test_calibrate_array_cli import (
    BOARD_M,
    CHAIR_M,
    GEOMETRY,
    SPOT_M,
    SQUARE_MM,
    room_recording,
)

F64 = npt.NDArray[np.float64]
RATE = 16000
DRIFT_PPM = 70.0
BLIND = [k for k in KINDS if k != "calibrated"]


def room_take(voice: F64, snr_db: float = 8.0) -> F64:
    """(N, 4) at 16 kHz: the board hearing `voice` from the exam table 3 s into the take,
    played by a loudspeaker `DRIFT_PPM` fast, over diffuse HVAC noise and a fan by the chair
    `snr_db` under it; peak at -10 dBFS."""
    played = np.concatenate([np.zeros(3 * RATE), voice, np.zeros(2 * RATE)])
    played = soxr.resample(played, RATE, RATE * (1 + DRIFT_PPM * 1e-6), quality="VHQ")
    x = room_recording(SPOT_M, played, 1)
    rng = np.random.default_rng(5)
    diffuse = noise.diffuse(BOARD_M, played.size, RATE, rng).astype(np.float64).T
    fan = room_recording(CHAIR_M, noise.fan(played.size, RATE, rng).astype(np.float64), 2)
    hum = diffuse + 0.5 * fan * np.sqrt(np.mean(diffuse**2) / np.mean(fan**2))
    speech = x[3 * RATE : 3 * RATE + voice.size]
    hum *= np.sqrt(np.mean(speech**2) / np.mean(hum**2)) * 10 ** (-snr_db / 20)
    take: F64 = x + hum
    take *= 10 ** (-10 / 20) / float(np.max(np.abs(take)))
    return take


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test voice as `array-check signal --seconds 15` writes it (checked below), and
    the room's take of it as a 48 kHz WAV."""
    folder = tmp_path_factory.mktemp("array-check")
    voice = folder / "voice.wav"
    soundfile.write(voice, synthetic_voice(15.0) * 10 ** (-6 / 20) / 0.5, RATE, subtype="PCM_16")
    played, _ = soundfile.read(voice, dtype="float64")
    take = folder / "take.wav"
    soundfile.write(take, soxr.resample(room_take(played), RATE, 48000), 48000, subtype="PCM_24")
    return {"voice": voice, "take": take}


def write_config(folder: Path, extra: str = "") -> Path:
    config = folder / "config.toml"
    config.write_text(f'[audio]\n{GEOMETRY}array_processing = "mvdr-wpe-postfilter"\n{extra}')
    return config


def run_json(run_cli: RunCli, room: dict[str, Path], config: Path, *more: str) -> dict[str, object]:
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--from-wav", str(room["take"]), "--config", str(config), "--json",
                     *more)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_signal_writes_the_test_voice_to_play(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    written = tmp_path / "voice.wav"
    result = run_cli("array-check", "signal", str(written), "--seconds", "15")
    assert result.returncode == 0, result.stderr
    assert "no words" in result.stdout
    data, rate = soundfile.read(written, dtype="float64")
    info = soundfile.info(str(written))
    assert np.array_equal(data, soundfile.read(room["voice"], dtype="float64")[0])
    assert (rate, info.channels, info.subtype, data.size) == (RATE, 1, "PCM_16", 15 * RATE)
    assert 20 * np.log10(np.max(np.abs(data))) == pytest.approx(-6.0, abs=0.1)


def test_run_scores_every_kind_in_the_room(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    report = run_json(run_cli, room, write_config(tmp_path), "--label", "exam-table")
    rows = {str(r["kind"]): r for r in report["kinds"]}  # type: ignore[attr-defined]
    assert list(rows) == BLIND  # no calibration: the blind kinds, the plain mix first
    assert report["label"] == "exam-table"
    assert report["mics"] == 4
    assert report["signal_at_s"] == pytest.approx(3.0, abs=0.02)
    assert report["clock_drift_ppm"] == pytest.approx(DRIFT_PPM, abs=5.0)
    # 8 dB per mic over the whole signal; the check measures the mics' average (where the
    # diffuse noise partly cancels) during the signal's active frames only: a few dB more
    assert 8.0 < report["snr_db"] < 13.0  # type: ignore[operator]
    assert report["clipped"] is False
    assert rows["average"]["si_sdr_gain_db"] == 0.0
    assert rows["mvdr-wpe-postfilter"]["configured"] is True
    # the shipped kind earns its place here too (measured: +1.7 dB SI-SDR, +0.03 STOI)
    assert rows["mvdr-wpe-postfilter"]["si_sdr_gain_db"] > 1.0
    assert rows["mvdr-wpe-postfilter"]["stoi_gain"] > 0.01
    assert report["best"] in {"mvdr-wpe-postfilter", "mvdr-postfilter"}
    assert report["notes"] == []


def test_run_prints_a_table_and_what_to_do(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--from-wav", str(room["take"]), "--config", str(config))  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "signal found at 3.0" in out
    assert "+70" in out or "+69" in out or "+71" in out  # the clock drift, in ppm
    for kind in BLIND:
        assert f"\n{kind} " in out
    assert "mvdr-wpe-postfilter " in out and " *\n" in out
    assert "best here: " in out


def test_a_configured_calibration_is_scored_too(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "array-calibration.npz"
    save_calibration(path, synthetic_calibration(SQUARE_MM, 2))
    report = run_json(run_cli, room, write_config(tmp_path, f'array_calibration = "{path}"\n'))
    kinds = [r["kind"] for r in report["kinds"]]  # type: ignore[attr-defined]
    assert kinds == [*BLIND, "calibrated"]


def test_a_calibrated_device_without_its_file_says_it_was_not_measured(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "none.npz"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[audio]\n{GEOMETRY}array_processing = "calibrated"\narray_calibration = "{missing}"\n'
    )
    report = run_json(run_cli, room, config)
    assert [r["kind"] for r in report["kinds"]] == BLIND  # type: ignore[attr-defined]
    assert report["notes"] == [
        f"calibrated: not measured: {missing} does not exist "
        "(make it with `edge-recorder calibrate-array`)"
    ]


def test_save_keeps_the_raw_take_for_its_owner_only(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    saved = tmp_path / "kept.wav"
    run_json(run_cli, room, write_config(tmp_path), "--save", str(saved))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    kept, rate = soundfile.read(saved, dtype="float64")
    original, _ = soundfile.read(room["take"], dtype="float64")
    assert rate == 48000
    assert np.array_equal(kept, original)


# --- refusals -------------------------------------------------------------------------------


def test_a_take_without_the_signal_is_refused_with_what_to_check(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    quiet = tmp_path / "quiet.wav"
    hiss = 0.01 * np.random.default_rng(2).standard_normal((25 * 48000, 4))
    soundfile.write(quiet, hiss, 48000, subtype="PCM_24")
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--from-wav", str(quiet), "--config", str(write_config(tmp_path)))  # fmt: skip
    assert result.returncode == 1
    assert "the signal was not found in the recording" in result.stderr
    assert "--reference" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "exam\ntable"], "--label: up to 32 printable characters"),
        (["--seconds", "500"], "--seconds must be 6-130 s"),
    ],
)
def test_bad_arguments_are_usage_errors(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--config", str(write_config(tmp_path)), *args)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


def test_a_silent_or_overlong_reference_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(10 * RATE), RATE, subtype="PCM_16")
    result = run_cli("array-check", "run", "--reference", str(silent), "--config", str(config))
    assert (result.returncode, f"{silent} is silent") == (
        1,
        result.stderr.split(": ", 1)[1].strip(),
    )
    long = tmp_path / "long.wav"
    soundfile.write(long, np.ones(121 * 8000) * 0.1, 8000, subtype="PCM_16")
    result = run_cli("array-check", "run", "--reference", str(long), "--config", str(config))
    assert result.returncode == 1
    assert "is 121.0 s long: 5-120 s" in result.stderr


def test_a_config_without_the_array_geometry_exits_78(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "plain.toml"
    config.write_text("[audio]\nchannels = 1\n")
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--from-wav", str(room["take"]), "--config", str(config))  # fmt: skip
    assert result.returncode == 78
    assert "array-check needs the geometry of at least 2 microphones" in result.stderr
