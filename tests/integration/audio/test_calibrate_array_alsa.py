"""`calibrate-array measure` capturing through real libasound (the ALSA `file` plugin): the
raw mic channels of a simulated room's sweep give the same responses as the same audio read
from a WAV, and a busy microphone gives capture's own clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge_recorder.audio.array.spots import sweep
from tests.conftest import RunCli
from tests.integration.audio.conftest import alsa_env
from tests.unit.test_calibrate_array_cli import GEOMETRY, SPOT_M, room_recording


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The room's recording as the 4-mic HAT's raw capture (48 kHz S32_LE, 8.3 s) and as a
    WAV of the same samples."""
    import soxr

    folder = tmp_path_factory.mktemp("alsa-room")
    played = np.concatenate([np.zeros(20800), 0.3 * sweep(5.0), np.zeros(32000)])
    up = soxr.resample(room_recording(SPOT_M, played, 1), 16000, 48000)
    ints = np.round(0.5 * up / np.max(np.abs(up)) * 2**31).astype("<i4")
    raw = folder / "in.raw"
    raw.write_bytes(ints.tobytes())
    wav = folder / "same.wav"
    soundfile.write(wav, ints, 48000, subtype="PCM_32")
    return raw, wav


def config_for(folder: Path, raw: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[audio]\ndevice = "fakemic:{raw}"\nrate = 48000\nformat = "S32_LE"\n{GEOMETRY}'
    )
    return config


def test_measure_through_libasound_matches_the_same_audio_from_a_wav(
    run_cli: RunCli, capture: tuple[Path, Path], tmp_path: Path
) -> None:
    raw, wav = capture
    config = config_for(tmp_path, raw)
    # the file plugin is not paced and returns garbage after the end: stay inside the file
    live = run_cli("calibrate-array", "measure", "--spot", "chair", "--seconds", "7.5",
                   "--dir", str(tmp_path / "alsa"), "--config", str(config),
                   env=alsa_env())  # fmt: skip
    assert live.returncode == 0, live.stderr
    assert f"recording 7.5 s from fakemic:{raw}: play the sweep now" in live.stdout
    offline = run_cli("calibrate-array", "measure", "--spot", "chair", "--from-wav", str(wav),
                      "--dir", str(tmp_path / "wav"), "--config", str(config))  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    with (
        np.load(tmp_path / "alsa" / "chair-1.npz") as a,
        np.load(tmp_path / "wav" / "chair-1.npz") as b,
    ):
        x, y = a["responses"], b["responses"]
    assert x.shape == y.shape == (4, 9680)
    # float32 capture vs float64 file reading: the same responses to ~1e-6
    assert np.max(np.abs(x - y)) < 1e-4 * np.max(np.abs(y))
    assert live.stdout.splitlines()[2] == offline.stdout.splitlines()[1]  # same direction


def test_a_busy_microphone_says_so(
    run_cli: RunCli, capture: tuple[Path, Path], tmp_path: Path, fault_shim: Path
) -> None:
    raw, _ = capture
    env = {**alsa_env(), "LD_PRELOAD": str(fault_shim), "SHIM_OPEN_FAIL": "1-99:EBUSY"}
    busy = run_cli("calibrate-array", "measure", "--spot", "chair", "--seconds", "7.5",
                   "--dir", str(tmp_path / "m"), "--config", str(config_for(tmp_path, raw)),
                   env=env)  # fmt: skip
    assert busy.returncode == 1
    assert "busy: another process holds the microphone" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert not (tmp_path / "m").exists()
