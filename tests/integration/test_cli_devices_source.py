"""`edge-recorder devices` describes the configured source as it is: a WAV file with the rate
and channels the file really has, or the synthetic generator; never the unused ALSA default
("plughw:CARD=ArrayUAC10 (card NOT present)") when no ALSA device is used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

from tests.conftest import RunCli


def _config(tmp_path: Path, audio: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[audio]\n{audio}\n")
    return path


def test_a_wav_source_is_shown_with_the_files_real_format(run_cli: RunCli, tmp_path: Path) -> None:
    wav = tmp_path / "mic.wav"
    soundfile.write(str(wav), np.zeros((24000, 2), dtype=np.int16), 48000, subtype="PCM_16")
    config = _config(tmp_path, f'source = "wav"\nwav_path = "{wav}"\nspeed = 4.0')
    text = run_cli("devices", "--no-probe", "--config", str(config))
    assert text.returncode == 0, text.stderr
    assert (
        f"configured source: wav file {wav} (48000 Hz, 2 ch, PCM_16, 0.5 s), at 4x" in text.stdout
    )
    assert "plughw" not in text.stdout and "NOT present" not in text.stdout
    report = json.loads(run_cli("devices", "--json", "--no-probe", "--config", str(config)).stdout)
    conf = report["configured"]
    assert (conf["source"], conf["wav_path"], conf["rate"], conf["channels"]) == (
        "wav",
        str(wav),
        48000,
        2,
    )
    assert conf["device"] is None and conf["card_present"] is None


def test_an_unreadable_wav_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    config = _config(tmp_path, f'source = "wav"\nwav_path = "{tmp_path / "missing.wav"}"')
    text = run_cli("devices", "--no-probe", "--config", str(config)).stdout
    assert f"wav file {tmp_path / 'missing.wav'} (unreadable:" in text


def test_a_synthetic_source_is_named_with_its_format(run_cli: RunCli, tmp_path: Path) -> None:
    config = _config(tmp_path, 'source = "synthetic"\nrate = 48000\nchannels = 2')
    text = run_cli("devices", "--no-probe", "--config", str(config)).stdout
    assert "configured source: synthetic" in text and "48000 Hz 2 ch S16_LE" in text
    assert "plughw" not in text
