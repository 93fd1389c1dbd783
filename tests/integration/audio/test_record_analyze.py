"""`analyze` and `record` as real processes: espeak-ng speech, WAV/synthetic sources, and
capture through real libasound's `file` plugin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge_recorder.audio.frames import AudioFormat, Frames
from edge_recorder.audio.pipeline import Pipeline
from edge_recorder.config.model import AudioConfig, EncodingConfig, VadConfig
from tests.conftest import RunCli
from tests.integration.audio.conftest import alsa_env

LEAD_S, TAIL_S = 1.5, 2.0
KEYS = [
    "duration_s",
    "speech_segments",
    "speech_ratio",
    "rms_dbfs",
    "peak_dbfs",
    "clipped_samples",
    "digital_silence_s",
]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """espeak-ng speech padded with 1.5 s before and 2 s after; returns (path, speech end)."""
    folder = tmp_path_factory.mktemp("speech")
    raw = folder / "raw.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us",
            "-w",
            str(raw),
            "Please describe where the pain is and when it started.",
        ],
        check=True,
        capture_output=True,
    )
    voice, rate = soundfile.read(raw, dtype="float32")
    voice *= 0.5
    padded = np.concatenate(
        [np.zeros(int(LEAD_S * rate), np.float32), voice, np.zeros(int(TAIL_S * rate), np.float32)]
    )
    path = folder / "speech.wav"
    soundfile.write(path, padded, rate, subtype="PCM_16")
    nonzero = np.flatnonzero(np.abs(voice) > 0.01)
    return path, LEAD_S + nonzero[-1] / rate


def test_analyze_json_finds_speech_where_it_is(run_cli: RunCli, speech_wav: tuple) -> None:
    path, speech_end = speech_wav
    result = run_cli("analyze", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report) == KEYS
    segments = report["speech_segments"]
    assert segments, report
    assert LEAD_S - 0.1 <= segments[0][0] <= LEAD_S + 0.3
    assert speech_end - 0.2 <= segments[-1][1] <= speech_end + 0.6
    duration = report["duration_s"]
    assert duration == pytest.approx(soundfile.info(str(path)).duration, abs=0.001)
    speech_s = sum(end - start for start, end in segments)
    assert report["speech_ratio"] == pytest.approx(speech_s / duration, abs=0.02)
    assert -40 < report["rms_dbfs"] < report["peak_dbfs"] <= -5.5
    assert report["clipped_samples"] == 0
    assert report["digital_silence_s"] == 0.0  # 2 s of zeros is below audio.digital_silence_s


@pytest.mark.parametrize("engine", ["webrtc", "energy"])
def test_analyze_with_other_engines(run_cli: RunCli, speech_wav: tuple, engine: str) -> None:
    path, speech_end = speech_wav
    result = run_cli("analyze", str(path), "--json", "--vad", engine)
    assert result.returncode == 0, result.stderr
    segments = json.loads(result.stdout)["speech_segments"]
    assert LEAD_S - 0.1 <= segments[0][0] <= LEAD_S + 0.3
    assert segments[-1][1] <= speech_end + 0.6


def test_analyze_human_output_and_bad_file(
    run_cli: RunCli, speech_wav: tuple, tmp_path: Path
) -> None:
    path, _ = speech_wav
    result = run_cli("analyze", str(path))
    assert result.returncode == 0
    assert "speech:" in result.stdout and "VAD silero" in result.stdout
    bogus = tmp_path / "not-audio.wav"
    bogus.write_text("hello")
    bad = run_cli("analyze", str(bogus))
    assert bad.returncode == 1
    assert "cannot read" in bad.stderr and "Traceback" not in bad.stderr


def write_config(tmp_path: Path, audio: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[audio]\n{audio}\n[encoding]\ncodec = "opus"\n')
    return config


def read_wav(path: Path) -> tuple[np.ndarray, soundfile._SoundFileInfo]:
    info = soundfile.info(str(path))
    data, _ = soundfile.read(path, dtype="int16")
    return data, info


def test_record_from_a_wav_source(run_cli: RunCli, speech_wav: tuple, tmp_path: Path) -> None:
    path, _ = speech_wav
    config = write_config(tmp_path, f'source = "wav"\nwav_path = "{path}"\nspeed = 0')
    out = tmp_path / "out.wav"
    result = run_cli("record", "--seconds", "3", str(out), "--config", str(config))
    assert result.returncode == 0, result.stderr
    data, info = read_wav(out)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert data.size == 3 * 16000
    assert np.all(data[: int(1.4 * 16000)] == 0)  # the lead-in silence stays silent
    assert np.abs(data[int(1.6 * 16000) :]).max() > 3000
    for label in ("level:", "clipping:", "xruns:    0", "speech:", "encoder:  opus"):
        assert label in result.stdout


def test_record_from_a_synthetic_array(run_cli: RunCli, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        'source = "synthetic"\nspeed = 0\nchannels = 4\nrate = 48000\n'
        'format = "S32_LE"\nmix_weights = [0.5, 0.5, 0.0, 0.0]',
    )
    out = tmp_path / "synthetic.wav"
    result = run_cli("record", "--seconds", "2.5", str(out), "--config", str(config))
    assert result.returncode == 0, result.stderr
    data, _info = read_wav(out)
    assert data.size == 40000
    assert "4 ch, 48000 Hz, S32_LE" in result.stdout


SQUARE_MM = [(22.85, 22.85, 0.0), (-22.85, 22.85, 0.0), (-22.85, -22.85, 0.0), (22.85, -22.85, 0.0)]


@pytest.mark.parametrize("array", ["average", "mvdr"])
def test_record_through_libasound_file_plugin_matches_offline_processing(
    run_cli: RunCli, speech_wav: tuple, tmp_path: Path, array: str
) -> None:
    """4-channel 48 kHz S32_LE through the real ALSA `file` plugin, processed by `record`,
    equals the same bytes run through the pipeline in-process: capture adds nothing (with
    the beamformer too: its output does not depend on how capture cut the stream)."""
    path, _ = speech_wav
    voice, rate = soundfile.read(path, dtype="float32")
    import soxr

    up = soxr.resample(voice, rate, 48000)
    rng = np.random.default_rng(2)
    chans = np.stack(
        [np.roll(up, d) + rng.standard_normal(up.size) * 1e-3 for d in (0, 2, 4, 6)], axis=1
    )
    raw = np.clip(chans * 2**31, -(2**31), 2**31 - 1).astype("<i4").tobytes()
    infile = tmp_path / "in.raw"
    infile.write_bytes(raw)  # ~5.6 s; we record 2 s (after EOF the plugin returns garbage)
    geometry = f'mic_positions_mm = {[list(p) for p in SQUARE_MM]}\narray_processing = "{array}"'
    config = write_config(
        tmp_path,
        f'device = "fakemic:{infile}"\nchannels = 4\nrate = 48000\nformat = "S32_LE"\n{geometry}',
    )
    out = tmp_path / "alsa.wav"
    result = run_cli("record", "--seconds", "2", str(out), "--config", str(config), env=alsa_env())
    assert result.returncode == 0, result.stderr + result.stdout
    data, _ = read_wav(out)
    fmt = AudioFormat(48000, 4, "S32_LE")
    audio = AudioConfig(
        source="alsa",
        channels=4,
        rate=48000,
        format="S32_LE",
        mic_positions_mm=SQUARE_MM,
        array_processing=array,  # type: ignore[arg-type]
    )
    pipeline = Pipeline(fmt, audio, VadConfig(), EncodingConfig(), encode=False)
    first = pipeline.process(Frames(raw[: 96000 * fmt.frame_bytes], fmt, 0)).pcm
    expected = np.concatenate([first, pipeline.finish().pcm])
    assert data.size == expected.size == 32000
    assert np.array_equal(data, expected)
    assert "fakemic:" in result.stdout and "xruns:    0" in result.stdout
    plain = Pipeline(
        fmt,
        audio.model_copy(update={"array_processing": "average"}),
        VadConfig(),
        EncodingConfig(),
        encode=False,
    )
    mixed = np.concatenate(
        [plain.process(Frames(raw[: 96000 * fmt.frame_bytes], fmt, 0)).pcm, plain.finish().pcm]
    )
    assert np.array_equal(data, mixed) == (array == "average")  # the beam was really on


def test_record_reports_a_missing_device(run_cli: RunCli, tmp_path: Path) -> None:
    config = write_config(tmp_path, 'device = "plughw:CARD=NoSuchCard,DEV=0"')
    result = run_cli(
        "record", "--seconds", "0.5", str(tmp_path / "x.wav"), "--config", str(config), timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "nothing recorded from plughw:CARD=NoSuchCard,DEV=0" in result.stderr


def encoded(path: Path, codec: str, folder: Path) -> Path:
    """The speech as the device's own encoder writes it (16 kHz mono, streamed in 120 ms
    chunks); pcm16's raw stream goes into a WAV, as the services and `spool export` hand it on."""
    import soxr

    from edge_recorder.audio.codecs import make_encoder

    pcm, rate = soundfile.read(path, dtype="int16")  # espeak's 22.05 kHz
    pcm16 = soxr.resample(pcm, rate, 16000).astype(np.int16)  # as the device's pipeline does
    encoder = make_encoder(EncodingConfig(codec=codec))  # type: ignore[arg-type]
    chunk = 1920
    body = b"".join(encoder.encode(pcm16[i : i + chunk]) for i in range(0, len(pcm16), chunk))
    body += encoder.finish()
    out = folder / f"speech.{'wav' if codec == 'pcm16' else codec}"
    if codec == "pcm16":
        soundfile.write(out, np.frombuffer(body, "<i2"), 16000, subtype="PCM_16")
    else:
        out.write_bytes(body)
    return out


@pytest.mark.parametrize("codec", ["pcm16", "opus", "flac"])
def test_analyze_reads_every_encoder_output_whole(
    run_cli: RunCli, speech_wav: tuple, tmp_path: Path, codec: str
) -> None:
    """The streamed FLAC states no length in its header: libsndfile alone reported 2^63-1
    frames and failed at the end ("Internal psf_fseek() failed")."""
    path, speech_end = speech_wav
    source = encoded(path, codec, tmp_path)
    result = run_cli("analyze", str(source), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = soundfile.info(str(path)).duration
    assert report["duration_s"] == pytest.approx(expected, abs=0.08 if codec == "opus" else 0.001)
    segments = report["speech_segments"]
    assert segments[0][0] >= LEAD_S - 0.1 and segments[-1][1] <= speech_end + 0.6
