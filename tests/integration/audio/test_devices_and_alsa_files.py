"""`edge-recorder devices` as a real process (this machine has no sound card), the ALSA
snippets in hardware/alsa through real libasound, and profiles through `check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import RunCli
from tests.integration.audio.conftest import ROOT, SYSTEM_ALSA_CONF, alsa_env

FAKE_PROC = ROOT / "tests" / "support" / "alsa" / "proc"


def test_devices_runs_without_a_sound_card_and_says_so(run_cli: RunCli) -> None:
    result = run_cli("devices", env={"EDGE_RECORDER_CONFIG": "/nonexistent/config.toml"})
    assert result.returncode == 0, result.stderr
    assert "No sound cards" in result.stdout
    assert "respeaker-usb-v2" in result.stdout  # the known profiles are listed
    assert "pin factory:" in result.stdout


def test_devices_json_reports_the_mock_pin_factory(run_cli: RunCli) -> None:
    result = run_cli(
        "devices",
        "--json",
        env={"GPIOZERO_PIN_FACTORY": "mock", "EDGE_RECORDER_CONFIG": "/nonexistent.toml"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["gpio"]["factory"] == "MockFactory"
    assert report["cards"] == []
    assert report["sound_support"] is False
    assert report["configured"]["card_present"] is False
    assert "null" in report["capture_pcm_names"]


def test_devices_marks_the_matching_profile_and_reads_usb_capabilities(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[audio]\nprofile = "respeaker-usb-v2"\n')
    result = run_cli("devices", "--json", "--proc", str(FAKE_PROC), "--config", str(config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cards = {card["id"]: card for card in report["cards"]}
    assert cards["vc4hdmi0"]["pcms"] == []  # HDMI: no capture
    array = cards["ArrayUAC10"]
    assert array["profiles"] == ["respeaker-usb-v2"]
    pcm = array["pcms"][0]
    assert pcm["pcm"] == "plughw:CARD=ArrayUAC10,DEV=0"
    assert (pcm["channels"], pcm["formats"], pcm["rates"]) == ([6], ["S16_LE"], "16000")
    assert pcm["error"]  # the card is not really here: opening it fails, and says why
    assert report["configured"] == {
        **report["configured"],
        "profile": "respeaker-usb-v2",
        "card_present": True,
    }
    text = run_cli("devices", "--proc", str(FAKE_PROC), "--config", str(config)).stdout
    assert "matches profile 'respeaker-usb-v2'" in text
    assert 'audio.profile = "respeaker-usb-v2"' in text


def test_check_accepts_a_profile_and_refuses_an_unknown_one(
    run_cli: RunCli, tmp_path: Path
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[audio]\nprofile = "respeaker-4mic-array"\n')
    result = run_cli("check", "--config", str(good))
    assert f"{good} is valid" in result.stdout, result.stderr  # (78: no service endpoints)
    assert "seeed4micvoicec" in result.stdout and "S32_LE" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[audio]\nprofile = "no-such-array"\n')
    result = run_cli("check", "--config", str(bad))
    assert result.returncode == 78
    assert "audio.profile: unknown hardware profile 'no-such-array'" in result.stderr


def test_alsa_snippets_parse_in_real_libasound() -> None:
    snippets = sorted((ROOT / "hardware" / "alsa").glob("*.conf"))
    env = alsa_env()
    env["ALSA_CONFIG_PATH"] = ":".join([str(SYSTEM_ALSA_CONF), *map(str, snippets)])
    listed = subprocess.run(
        ["arecord", "-L"], env=env, capture_output=True, text=True, check=False, timeout=30
    )
    assert listed.returncode == 0
    names = set(listed.stdout.split())
    assert {"mic_dsnoop", "mic_shared", "mic"} <= names
    assert "error" not in listed.stderr.lower()
    # opening resolves the definition down to the (absent) card, named, not by index
    opened = subprocess.run(
        ["arecord", "-D", "mic", "-d", "1", "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert opened.returncode != 0
    assert "Cannot get card index for sndrpigooglevoi" in opened.stderr


PROBE = """
import json, sys
from edge_recorder.capture.registry import probe_mic
from edge_recorder.config.loader import build_config
config = build_config({"audio": {"device": sys.argv[1]}}, environ={})
print(json.dumps([row.__dict__ for row in probe_mic(config)]))
"""


def test_mic_probe_captures_a_level_or_names_the_problem(tmp_path: Path, fault_shim: Path) -> None:
    raw = tmp_path / "tone.raw"
    tone = (8000 * np.sin(np.arange(32000) * 2 * np.pi * 440 / 16000)).astype("<i2")
    raw.write_bytes(tone.tobytes())
    env = {**alsa_env(), "LD_PRELOAD": str(fault_shim), "SHIM_PACE": "1"}

    def probe(device: str) -> dict[str, str]:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, device],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        rows: list[dict[str, str]] = json.loads(out.stdout)
        return rows[0]

    row = probe(f"fakemic:{raw}")
    assert row["status"] == "ok"
    # a sine peaking at 8000/32768 (-12.2 dBFS) has an RMS 3.0 dB lower
    assert "8000 frames, level -15.3 dBFS" in row["detail"]
    missing = probe("plughw:CARD=NoSuchMic,DEV=0")
    assert missing["status"] == "fail"
    assert "not found" in missing["detail"]
