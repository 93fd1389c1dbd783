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
from edge_recorder.commands import array_check
from edge_recorder.commands._mic_take import write_signal
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
    write_signal(voice, synthetic_voice(15.0), -6.0)
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


# --- the advice (pure) -----------------------------------------------------------------------


def _report_with(configured: str, scores: dict[str, float]) -> array_check.Report:
    rows = [
        array_check.Row(
            kind, value, value - scores["average"], None, None, kind == configured, None
        )
        for kind, value in scores.items()
    ]
    best = max(rows, key=lambda r: r.si_sdr_db).kind
    return array_check.Report(
        "", "test", 4, 3.0, 0.6, 0.0, -40.0, 15.0, False, configured, best, rows, []
    )


def test_the_advice_names_a_kind_worth_switching_to() -> None:
    report = _report_with("mvdr", {"average": -4.0, "mvdr": -3.0, "mvdr-wpe-postfilter": -2.0})
    assert array_check.advice(report) == (
        "best here: mvdr-wpe-postfilter, +2.0 dB SI-SDR over the plain mix and +1.0 dB over the "
        "configured mvdr. If the other spots agree, set in the config's [audio] section: "
        'array_processing = "mvdr-wpe-postfilter"'
    )


def test_the_advice_keeps_a_configured_kind_within_half_a_db() -> None:
    report = _report_with("mvdr", {"average": -4.0, "mvdr": -2.7, "mvdr-postfilter": -2.5})
    assert array_check.advice(report) == (
        "best here: mvdr-postfilter, +1.5 dB SI-SDR over the plain mix; the configured mvdr "
        "is within 0.5 dB of it"
    )


def test_the_advice_for_a_device_on_the_plain_mix_or_a_missing_calibration() -> None:
    report = _report_with("calibrated", {"average": -4.0, "mvdr": -3.0})
    assert array_check.advice(report) == "best here: mvdr, +1.0 dB SI-SDR over the plain mix"


def test_a_stereo_reference_is_heard_as_a_mono_loudspeaker_plays_it(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    """Its channels averaged: voice ± another voice average to the voice the room heard
    (either channel alone would carry the other voice as distortion)."""
    voice, _ = soundfile.read(room["voice"], dtype="float64")
    other = 0.5 * synthetic_voice(15.0, seed=3)
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([voice + other, voice - other], axis=1), RATE, "FLOAT")
    mono = run_json(run_cli, room, write_config(tmp_path))
    config = str(write_config(tmp_path))
    result = run_cli("array-check", "run", "--reference", str(stereo), "--from-wav",
                     str(room["take"]), "--config", config, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    both = json.loads(result.stdout)
    kinds: list[dict[str, float]] = mono["kinds"]  # type: ignore[assignment]
    assert [r["si_sdr_db"] for r in both["kinds"]] == pytest.approx(
        [r["si_sdr_db"] for r in kinds], abs=0.01
    )


def test_a_clipped_take_is_flagged(run_cli: RunCli, room: dict[str, Path], tmp_path: Path) -> None:
    take, rate = soundfile.read(room["take"], dtype="float64")
    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.clip(take * 4.0, -1.0, 1.0), rate, subtype="PCM_24")
    result = run_cli("array-check", "run", "--reference", str(room["voice"]),
                     "--from-wav", str(loud), "--config", str(write_config(tmp_path)))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning: the mics clipped: turn the loudspeaker down and run again" in result.stdout


def test_a_dead_mic_in_the_take_is_named(
    run_cli: RunCli, room: dict[str, Path], tmp_path: Path
) -> None:
    """The beams leave a faulty mic out (audio/array/mic_balance.py): the check scores what
    the device would do, and says which mic to look at."""
    take, rate = soundfile.read(room["take"], dtype="float64")
    take[:, 2] = 0.0
    broken = tmp_path / "broken.wav"
    soundfile.write(broken, take, rate, subtype="PCM_24")
    report = run_json(run_cli, {**room, "take": broken}, write_config(tmp_path))
    assert report["notes"] == [
        "mic 3 of 4 silent (-40 dB): the beams leave it out (check that mic, then run again)"
    ]
