"""`array-check run` capturing through real libasound (the ALSA `file` plugin): the room's
take of the test voice, read from the mics as the 4-mic HAT delivers them (48 kHz S32_LE),
scores as the same samples read from a WAV, and `--save` keeps what was captured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from edge_recorder.audio.array.testvoice import synthetic_voice
from edge_recorder.commands._mic_take import write_signal
from tests.conftest import RunCli
from tests.integration.audio.conftest import alsa_env
from tests.unit.test_array_check_cli import room_take
from tests.unit.test_calibrate_array_cli import GEOMETRY

RATE = 16000


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test voice (12 s), and the room's take of it (~17 s) as raw capture and as a WAV
    of the same samples."""
    folder = tmp_path_factory.mktemp("alsa-array-check")
    voice = folder / "voice.wav"
    write_signal(voice, synthetic_voice(12.0), -6.0)  # as `array-check signal` writes it
    played, _ = soundfile.read(voice, dtype="float64")
    up = soxr.resample(room_take(played), RATE, 48000)
    ints = np.round(up * 2**31).astype("<i4")
    raw = folder / "in.raw"
    raw.write_bytes(ints.tobytes())
    wav = folder / "same.wav"
    soundfile.write(wav, ints, 48000, subtype="PCM_32")
    config = folder / "config.toml"
    config.write_text(
        f'[audio]\ndevice = "fakemic:{raw}"\nrate = 48000\nformat = "S32_LE"\n{GEOMETRY}'
    )
    return {"voice": voice, "raw": raw, "wav": wav, "config": config}


def test_run_through_libasound_scores_as_the_same_take_from_a_wav(
    run_cli: RunCli, capture: dict[str, Path], tmp_path: Path
) -> None:
    common = ("array-check", "run", "--reference", str(capture["voice"]),
              "--config", str(capture["config"]), "--json")  # fmt: skip
    saved = tmp_path / "kept.wav"
    # the file plugin is not paced and returns garbage after the end: stay inside the file
    live = run_cli(*common, "--seconds", "16.5", "--save", str(saved), env=alsa_env())
    assert live.returncode == 0, live.stderr
    assert f"recording 16.5 s from fakemic:{capture['raw']}: start the signal" in live.stderr
    offline = run_cli(*common, "--from-wav", str(capture["wav"]))
    assert offline.returncode == 0, offline.stderr
    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    assert a["source"] == f"fakemic:{capture['raw']}"
    assert a["signal_at_s"] == b["signal_at_s"] == pytest.approx(3.0, abs=0.02)
    assert a["clock_drift_ppm"] == pytest.approx(b["clock_drift_ppm"], abs=0.5)
    # float32 capture vs float64 file reading (and 16.5 s of the take): the same scores
    for x, y in zip(a["kinds"], b["kinds"], strict=True):
        assert x["kind"] == y["kind"]
        assert x["si_sdr_db"] == pytest.approx(y["si_sdr_db"], abs=0.05)
    kept, rate = soundfile.read(saved, dtype="float64")
    same, _ = soundfile.read(capture["wav"], dtype="float64", frames=kept.shape[0])
    assert (rate, kept.shape) == (48000, (round(16.5 * 48000), 4))
    assert np.max(np.abs(kept - same)) < 1e-6  # float32 of the captured integers
