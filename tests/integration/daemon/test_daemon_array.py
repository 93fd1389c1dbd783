"""`edge-recorder run` on a 4-mic HAT as its profile ships (a beamformer on, 80 ms periods):
the encounter reaches the service holding exactly what the pipeline makes of the frames it
covered, that output does not depend on how the frames were cut, and it is the beam's (not
the plain mix's). The unit tests prove the array stage framing-invariant on its own; this
checks the daemon keeps that promise end to end (`record`, `analyze` and the demo reuse the
same Pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from devtools.demo.verdict import reencode
from devtools.farfield.shipped import synthetic_calibration
from edge_recorder.audio.array.calibration_file import save_calibration
from edge_recorder.config.hardware import load_profile
from tests.integration.daemon.conftest import (
    DaemonProcess,
    StartDaemon,
    closed_recordings,
    daemon_config,
    wait_for,
    write_config,
)
from tests.integration.daemon.test_daemon_encounters import assert_holds_exact_audio, delivered
from tests.support.emulator import EmulatorHandle

PROFILE = "respeaker-4mic-array"
RATE = 16000
SOUND_MM_PER_S = 343_000.0


@pytest.fixture
def array_wav(speech_wav: Path, tmp_path: Path) -> Path:
    """The speech as the 4-mic HAT hears a talker 40 degrees off its x axis: each mic delayed
    by the geometry (whole samples), its own gain and self-noise, 32-bit like the AC108."""
    return hat_wav(speech_wav, tmp_path / "array.wav", (1.0, 0.9, 0.8, 0.95))


def hat_wav(speech_wav: Path, path: Path, gains: tuple[float, ...]) -> Path:
    """The talker as `array_wav` hears it, each mic at its gain (0: a dead capsule, zeros)."""
    mono, rate = soundfile.read(str(speech_wav), dtype="float64")
    speech = soxr.resample(mono, rate, RATE)
    mics = np.array(load_profile(PROFILE).audio["mic_positions_mm"], dtype=np.float64)
    toward = np.array([np.cos(np.radians(40.0)), np.sin(np.radians(40.0)), 0.0])
    lead = mics @ toward / SOUND_MM_PER_S * RATE  # samples each mic hears the talker early
    delays = np.round(lead.max() - lead).astype(int)
    rng = np.random.default_rng(3)
    channels = []
    for delay, gain in zip(delays, gains, strict=True):
        shifted = np.concatenate([np.zeros(delay), speech])[: speech.size]
        hiss = rng.normal(0, 1e-3, speech.size) if gain else np.zeros(speech.size)
        channels.append(0.5 * gain * shifted + hiss)
    data = np.clip(np.stack(channels, axis=1), -1, 1)
    soundfile.write(str(path), (data * (2**31 - 1)).astype(np.int32), RATE, subtype="PCM_32")
    return path


def with_audio(config: Path, folder: Path, **audio: object) -> Path:
    """A copy of the device's config with `audio` keys changed (for an offline re-encode)."""
    import tomllib

    tree = tomllib.loads(config.read_text())
    tree["audio"].update(audio)
    tree.setdefault("encoding", {})["chunk_ms"] = 80
    return write_config(folder / f"offline-{len(list(folder.glob('offline-*')))}.toml", tree)


async def stop_and_deliver(daemon: DaemonProcess, emulator: EmulatorHandle, cid: str) -> None:
    """`ctl stop`, then wait until the service has the recording finalized."""
    code, _out, err = await daemon.ctl("stop")
    assert code == 0, err
    await daemon.wait_state("idle")

    async def done() -> bool:
        return await delivered(emulator, cid, 1) is not None

    await wait_for(done, timeout=40, what="the recording finalized, processing started")


@pytest.mark.parametrize("kind", ["as shipped", "calibrated"])
async def test_a_4mic_hat_delivers_the_beam_exactly_whatever_the_framing(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    array_wav: Path, kind: str,
) -> None:  # fmt: skip
    """As the profile ships (its blind beam), and with the opt-in room calibration."""
    tree = daemon_config(aas_emulator, tmp_path, short_dir, array_wav)
    tree["audio"]["profile"] = PROFILE
    if kind == "calibrated":
        made = synthetic_calibration(load_profile(PROFILE).audio["mic_positions_mm"], 3)
        save_calibration(tmp_path / "array-calibration.npz", made)
        tree["audio"]["array_processing"] = "calibrated"
        tree["audio"]["array_calibration"] = str(tmp_path / "array-calibration.npz")
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()
    cid = await daemon.start_encounter()

    async def live_audio() -> bool:
        try:
            recs = (await aas_emulator.session(cid))["recordings"]
        except LookupError:
            return False
        return bool(recs) and recs[0]["bytes"] > 96000  # 3 s

    await wait_for(live_audio, what="live audio at the emulator")
    await stop_and_deliver(daemon, aas_emulator, cid)
    # the service holds what the pipeline (beam on, as the profile ships) makes of the frames
    await assert_holds_exact_audio(aas_emulator, cid, config, daemon.log)
    (closed,) = closed_recordings(daemon.log)
    stored = await aas_emulator.recording_bytes(cid, closed["id"])
    span = [(closed["start"], closed["end"])]
    # the same frames cut into 10 ms or 40 ms periods (the recording starts and ends on the
    # daemon's 80 ms grid, so both cover exactly its frames): the same bytes
    assert reencode(with_audio(config, tmp_path, period_ms=10), span) == [stored]
    assert reencode(with_audio(config, tmp_path, period_ms=40), span) == [stored]
    # and it is the beam's output, not the plain mix's
    (plain,) = reencode(with_audio(config, tmp_path, array_processing="average"), span)
    assert len(plain) == len(stored) and plain != stored
    if kind == "calibrated":  # the calibrated beam ran, not its blind fallback
        assert "array calibration not used" not in daemon.log
        assert "array calibration loaded" in daemon.log
        fallback = with_audio(config, tmp_path, array_processing="mvdr-wpe-postfilter")
        assert reencode(fallback, span) != [stored]


async def test_a_dead_mic_is_left_out_said_and_still_bit_exact(
    aas_emulator: EmulatorHandle, start_daemon: StartDaemon, tmp_path: Path, short_dir: Path,
    speech_wav: Path,
) -> None:  # fmt: skip
    """Mic 3 of the HAT gives zeros: the daemon logs it once, the status carries the warning
    (ctl, and so MQTT), and the service still gets exactly the pipeline's output."""
    wav = hat_wav(speech_wav, tmp_path / "dead.wav", (1.0, 0.9, 0.0, 0.95))
    tree = daemon_config(aas_emulator, tmp_path, short_dir, wav)
    tree["audio"]["profile"] = PROFILE
    config = write_config(tmp_path / "device.toml", tree)
    daemon = await start_daemon(config)
    await daemon.ready()
    assert "array_mic_fault" not in (await daemon.status())["warnings"]
    cid = await daemon.start_encounter()

    async def said() -> bool:
        return "array_mic_fault" in (await daemon.status())["warnings"]

    await wait_for(said, what="the status warning array_mic_fault")
    await stop_and_deliver(daemon, aas_emulator, cid)
    assert daemon.log.count("array mic 3 of 4 silent (-40 dB): left out of the beam") == 1
    await assert_holds_exact_audio(aas_emulator, cid, config, daemon.log)
    code, out, err = await daemon.ctl("status")
    assert code == 0 and "array_mic_fault" in out, err
