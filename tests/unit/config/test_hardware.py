"""Hardware profiles validate with the config's own models, fill the config, and agree with
the installer-facing copies in hardware/ (profiles, wiring)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edge_recorder.config.hardware import (
    PACKAGE_PROFILES,
    PROFILES_ENV,
    Profile,
    all_profiles,
    apply_profile,
    load_profile,
    load_profile_file,
)
from edge_recorder.config.loader import ConfigError, build_config
from edge_recorder.config.model import PanelConfig

ROOT = Path(__file__).resolve().parents[3]
DOC_PROFILES = ROOT / "hardware" / "profiles"
EXPECTED = {
    "respeaker-2mic-hat",
    "respeaker-4mic-array",
    "respeaker-6mic-array",
    "respeaker-usb-v2",
    "minidsp-uma8",
    "generic-usb-mic",
    "i2s-mems-pair",
}
# BCM GPIO -> physical header pin on the 40-pin header (Pi 4 and Pi 5 alike)
HEADER = {2: 3, 3: 5, 4: 7, 5: 29, 6: 31, 13: 33, 17: 11, 22: 15, 23: 16, 24: 18, 25: 22, 27: 13}


@pytest.fixture(autouse=True)
def _no_site_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the shipped profiles (a machine's /etc must not change the test)."""
    monkeypatch.setattr("edge_recorder.config.hardware.SITE_PROFILES", tmp_path / "no-site")
    monkeypatch.delenv(PROFILES_ENV, raising=False)


def test_the_required_profiles_ship_and_validate() -> None:
    profiles = all_profiles()
    assert set(profiles) >= EXPECTED
    for name, profile in profiles.items():
        assert isinstance(profile, Profile)
        assert "CARD=" in profile.audio["device"], name
        assert profile.card_match, name


def test_documented_profiles_are_the_packaged_ones_byte_for_byte() -> None:
    doc = {p.name: p.read_bytes() for p in DOC_PROFILES.glob("*.toml")}
    packaged = {p.name: p.read_bytes() for p in PACKAGE_PROFILES.glob("*.toml")}
    assert set(doc) == set(packaged), "cp hardware/profiles/*.toml edge_recorder/config/profiles/"
    for name in doc:
        assert doc[name] == packaged[name], f"{name} differs: copy hardware/profiles over"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_selecting_a_profile_fills_audio_and_panel(name: str) -> None:
    profile = load_profile(name)
    config = build_config({"audio": {"profile": name}}, environ={})
    audio = config.audio.model_dump(mode="json")  # TOML arrays, as the profile holds them
    for key, value in profile.audio.items():
        assert audio[key] == value, key
    for key, value in profile.panel.items():
        assert getattr(config.panel, key) == value, key
    if profile.kind == "hat" or profile.kind == "i2s":
        assert profile.boot.config_txt, "an I2S board needs its overlay lines"


def test_config_values_override_the_profile() -> None:
    config = build_config(
        {"audio": {"profile": "respeaker-usb-v2", "gain_db": 6.0, "device": "mic_shared"}},
        environ={},
    )
    assert config.audio.gain_db == 6.0
    assert config.audio.device == "mic_shared"
    assert config.audio.channels == 6  # still from the profile


def test_environment_overrides_apply_before_the_profile_fills_in() -> None:
    config = build_config({}, environ={"EDGE_RECORDER__AUDIO__PROFILE": "i2s-mems-pair"})
    assert config.audio.format == "S32_LE"
    assert config.audio.gain_db == 20.0


def test_overriding_channels_drops_the_profiles_mix_and_led_drops_its_pins() -> None:
    config = build_config(
        {
            "audio": {"profile": "respeaker-usb-v2", "channels": 1},
            "panel": {"led": "single", "led_pins": [26]},
        },
        environ={},
    )
    assert config.audio.channels == 1
    assert config.audio.mix_weights == []
    tree = apply_profile({"audio": {"profile": "respeaker-4mic-array"}, "panel": {"led": "none"}})
    assert "led_pins" not in tree["panel"]


def test_unknown_profile_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"audio": {"profile": "respeaker-9000"}}, environ={})
    line = caught.value.lines[0]
    assert line.startswith("audio.profile: unknown hardware profile 'respeaker-9000'")
    assert "respeaker-usb-v2" in line


@pytest.mark.parametrize(
    ("audio", "words"),
    [
        ('device = "plughw:CARD=X,DEV=0"\nrate = 96000', "audio.rate"),
        ('device = "hw:1,0"', "CARD=<id>"),
        ('device = "plughw:CARD=X,DEV=0"\nspeed = 2.0', "speed"),
        ('device = "plughw:CARD=X,DEV=0"\nchannels = 2\nmix_weights = [1.0]', "mix_weights"),
        ("rate = 16000", "audio.device is required"),
    ],
)
def test_a_bad_site_profile_names_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audio: str, words: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    path = site / "my-mic.toml"
    path.write_text(
        f'name = "my-mic"\ntitle = "x"\nkind = "usb"\ncard_match = ["X"]\n[audio]\n{audio}\n'
    )
    monkeypatch.setenv(PROFILES_ENV, str(site))
    with pytest.raises(ConfigError) as caught:
        build_config({"audio": {"profile": "my-mic"}}, environ={})
    text = "\n".join(caught.value.lines)
    assert str(path) in text
    assert words in text


def test_a_site_profile_shadows_a_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    text = (PACKAGE_PROFILES / "generic-usb-mic.toml").read_text()
    (site / "generic-usb-mic.toml").write_text(text.replace("CARD=Device", "CARD=Blue"))
    monkeypatch.setenv(PROFILES_ENV, str(site))
    assert load_profile("generic-usb-mic").audio["device"] == "plughw:CARD=Blue,DEV=0"


def test_profile_file_name_must_match(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_bytes((PACKAGE_PROFILES / "generic-usb-mic.toml").read_bytes())
    with pytest.raises(ConfigError, match="must match the file name"):
        load_profile_file(path)


def test_card_matching_by_id_or_name_and_device_for_the_present_card() -> None:
    usb = load_profile("respeaker-usb-v2")
    assert usb.matches("ArrayUAC10")
    assert usb.matches("Array", "ReSpeaker 4 Mic Array (UAC1.0)")
    assert not usb.matches("vc4hdmi0", "vc4-hdmi-0")
    generic = load_profile("generic-usb-mic")
    assert generic.device_for("Blue") == "plughw:CARD=Blue,DEV=0"


def test_onboard_gpio_parts_do_not_collide_with_the_profiles_panel() -> None:
    for name, profile in all_profiles().items():
        panel = PanelConfig.model_validate(profile.panel)
        panel_pins = {
            panel.record_button_pin,
            panel.privacy_button_pin,
            panel.buzzer_pin,
            *panel.led_pins,
        }
        for part in profile.onboard:
            if part.gpio is not None and part.kind != "button":
                assert part.gpio not in panel_pins, name
        if any(p.notes and "GPIO5" in p.notes for p in profile.onboard):
            assert 5 not in panel.led_pins, f"{name}: GPIO5 powers the LED ring"


def _pin_rows() -> dict[str, tuple[int, int]]:
    text = (ROOT / "hardware" / "wiring" / "pins.md").read_text()
    rows: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[2].isdigit() and cells[3].isdigit():
            rows[cells[0]] = (int(cells[2]), int(cells[3]))
    return rows


def test_wiring_table_matches_the_config_defaults_and_the_header() -> None:
    rows = _pin_rows()
    defaults = PanelConfig()
    assert rows["Record button"][0] == defaults.record_button_pin
    assert [rows[f"LED {c}"][0] for c in ("red", "green", "blue")] == defaults.led_pins
    for function, (bcm, physical) in rows.items():
        assert HEADER[bcm] == physical, f"{function}: GPIO{bcm} is header pin {HEADER[bcm]}"
    # the suggested optional pins and the 4/6-mic LED pins form valid panels
    PanelConfig(
        privacy_button_pin=rows["Privacy (pause) button"][0],
        buzzer_pin=rows["Buzzer (via transistor)"][0],
    )
    alt = [rows[f"Alt. LED {c} (4/6-mic boards)"][0] for c in ("red", "green", "blue")]
    assert alt == load_profile("respeaker-4mic-array").panel["led_pins"]


def test_wiring_diagram_is_valid_svg_showing_the_same_pins() -> None:
    path = ROOT / "hardware" / "wiring" / "panel-wiring.svg"
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    for function, (bcm, physical) in _pin_rows().items():
        if not function.startswith("Alt."):
            assert f"GPIO{bcm} (pin {physical})" in text, function
    assert "Pi 5" in text and "lgpio" in text


def test_udev_rule_lines_are_well_formed() -> None:
    rules = (ROOT / "hardware" / "udev" / "90-edge-recorder-mic.rules").read_text()
    lines = [line for line in rules.splitlines() if line.strip() and not line.startswith("#")]
    assert lines
    pair = re.compile(r'^[A-Z]+(\{[^}]+\})?(==|!=|=|\+=|:=)"[^"]*"$')
    for line in lines:
        for item in (part.strip() for part in line.split(",")):
            assert pair.match(item), item
    assert any('ATTR{id}="edgemic"' in line for line in lines)


def test_a_profile_gives_the_array_geometry_unless_the_channels_are_overridden() -> None:
    config = build_config({"audio": {"profile": "respeaker-6mic-array"}}, environ={})
    assert len(config.audio.mic_positions_mm) == 6  # channels 7-8 are the loopback, not mics
    radii = {round((x * x + y * y) ** 0.5, 1) for x, y, _ in config.audio.mic_positions_mm}
    assert radii == {46.3}
    mono = build_config({"audio": {"profile": "respeaker-6mic-array", "channels": 1}}, environ={})
    assert mono.audio.mic_positions_mm == []  # 6 positions for 1 channel would not fit


def test_more_microphones_than_channels_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mic_positions_mm lists 3 microphones for 2 channels"):
        build_config(
            {"audio": {"channels": 2, "mic_positions_mm": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]}},
            environ={},
        )


def test_the_shipped_config_file_with_a_profile_added_gets_the_profiles_audio(
    repo_root: Path,
) -> None:
    """The .deb installs config.example.toml as /etc/edge-recorder/config.toml; adding
    `profile = ...` to it must select the board, not be outvoted by the file's own defaults
    (it was: every audio key was written out, so the device stayed a 1-channel USB mic)."""
    import tomllib

    tree = tomllib.loads((repo_root / "config.example.toml").read_text())
    tree["audio"]["profile"] = "respeaker-4mic-array"
    config = build_config(tree, environ={})
    profile = load_profile("respeaker-4mic-array")
    assert config.audio.channels == 4
    assert config.audio.device == profile.audio["device"]
    assert config.audio.array_processing == profile.audio["array_processing"] != "average"
    assert config.encoding.chunk_ms == profile.audio["period_ms"]


def test_an_unset_chunk_is_one_capture_period_and_a_set_one_wins() -> None:
    assert build_config({"audio": {"period_ms": 80}}, environ={}).encoding.chunk_ms == 80
    assert build_config({"audio": {"period_ms": 10}}, environ={}).encoding.chunk_ms == 20
    both = build_config({"audio": {"period_ms": 80}, "encoding": {"chunk_ms": 160}}, environ={})
    assert both.encoding.chunk_ms == 160
    assert build_config({}, environ={}).encoding.chunk_ms == 120


# The live latency goal is p95 <= 150 ms for the oldest sample of a message; the daemon adds
# a few ms after a chunk is complete (bench_daemon: newest-sample p95 ~4-9 ms): leave 10.
LATENCY_BUDGET_MS = 140.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_profile_as_shipped_fits_the_live_latency_budget(name: str) -> None:
    """A chunk's oldest sample waits the chunk, then the beam's delay: a profile that turns a
    beam on must shorten its period (and so its chunks) to pay for it."""
    import numpy as np

    from edge_recorder.audio.array import make_array_processor

    audio = build_config({"audio": {"profile": name}}, environ={}).audio
    chunk_ms = build_config({"audio": {"profile": name}}, environ={}).encoding.chunk_ms
    beam_ms = 0.0
    if audio.array_processing != "average":
        positions = np.array(audio.mic_positions_mm) / 1000.0
        processor = make_array_processor(
            audio.array_processing, positions, 16000, batch=audio.array_batch_hops
        )
        beam_ms = 1000.0 * processor.delay_samples / 16000
    assert chunk_ms + beam_ms <= LATENCY_BUDGET_MS, (name, chunk_ms, beam_ms)


def test_profile_keys_set_back_to_the_generic_default_are_reported_not_chosen_values() -> None:
    from edge_recorder.config.hardware import outvoted

    old_example = {  # what a config file kept from before 2026-12 holds
        "audio": {"profile": "respeaker-4mic-array", "channels": 1, "format": "S16_LE"}
    }
    lines = outvoted(old_example)
    assert [line.split(" = ")[0] for line in lines] == ["audio.channels", "audio.format"]
    assert "respeaker-4mic-array's 4" in lines[0]
    chosen = {"audio": {"profile": "respeaker-4mic-array", "gain_db": 12.0, "channels": 4}}
    assert outvoted(chosen) == []  # a deliberate value, or the profile's own, is no warning
    assert outvoted({"audio": {"channels": 1}}) == []  # no profile, nothing to outvote
    assert outvoted({"audio": {"profile": "no-such-board", "channels": 1}}) == []
