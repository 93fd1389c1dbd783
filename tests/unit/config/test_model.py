"""The config model: defaults, validation messages with key paths, env overrides, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.config.base import is_loopback_host
from edge_recorder.config.loader import ConfigError, build_config, load_config
from edge_recorder.config.model import Config, env_overrides


def errors_for(raw: dict[str, object], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(raw, environ or {})
    return caught.value.lines


def test_defaults_validate_and_suit_a_pi_with_a_usb_array() -> None:
    config = build_config({}, {})
    assert config.audio.source == "alsa"
    assert "CARD=" in config.audio.device  # by name, never by card index
    assert config.audio.rate == 16000
    assert config.control.socket == Path("/run/edge-recorder/control.sock")
    assert config.mqtt.host is None  # fleet reporting is opt-in


def test_example_config_validates(repo_root: Path) -> None:
    config = load_config(repo_root / "config.example.toml", environ={})
    assert isinstance(config, Config)
    assert config.audio.format == "S16_LE"


def test_unknown_section_is_named_with_a_suggestion() -> None:
    assert errors_for({"audoi": {"rate": 16000}}) == [
        "audoi: unknown section; did you mean 'audio'?"
    ]


def test_unknown_key_is_named_with_a_suggestion() -> None:
    assert errors_for({"audio": {"rat": 16000}}) == ["audio.rat: unknown key; did you mean 'rate'?"]


def test_unknown_key_without_a_close_match() -> None:
    assert errors_for({"spool": {"zzz": 1}}) == ["spool.zzz: unknown key"]


def test_wrong_type_names_the_key_and_the_value() -> None:
    (line,) = errors_for({"audio": {"rate": "fast"}})
    assert line.startswith("audio.rate: ")
    assert "integer" in line and "'fast'" in line


def test_out_of_range_names_the_key() -> None:
    (line,) = errors_for({"audio": {"rate": 96000}})
    assert line.startswith("audio.rate: ") and "48000" in line


def test_every_error_gets_its_own_line() -> None:
    lines = errors_for({"audio": {"rate": "x", "channels": 0}, "nope": {}})
    assert sorted(line.split(":")[0] for line in lines) == ["audio.channels", "audio.rate", "nope"]


def test_unknown_format_constant_is_rejected_before_any_device_is_opened() -> None:
    (line,) = errors_for({"audio": {"format": "S8"}})
    assert line.startswith("audio.format: ") and "S16_LE" in line


@pytest.mark.parametrize(
    ("section", "key", "hint"),
    [
        ("auth", "client_secret", "client_secret_file"),
        ("mqtt", "password", "password_file"),
        ("auth", "token", "token_file"),
        ("spool", "key", "key_file"),
    ],
)
def test_inline_secrets_are_refused_with_a_pointer(section: str, key: str, hint: str) -> None:
    (line,) = errors_for({section: {key: "hunter2"}})
    assert line.startswith(f"{section}.{key}: secrets are not accepted inline")
    assert hint in line
    assert "hunter2" not in line


def test_wav_source_requires_a_path() -> None:
    (line,) = errors_for({"audio": {"source": "wav"}})
    assert "audio.wav_path is required" in line


def test_mix_weights_must_match_channels() -> None:
    (line,) = errors_for({"audio": {"channels": 4, "mix_weights": [1, 1]}})
    assert "2 weights for 4 channels" in line


@pytest.mark.parametrize(
    "raw",
    [
        {"aas": {"tls": False, "grpc_target": "aas.example.org:443"}},
        {"aas": {"tls": False, "rest_url": "http://10.0.0.5:8080"}},
        {"mqtt": {"host": "broker.example.org"}},
        {"auth": {"token_url": "http://login.example.org/token"}},
    ],
)
def test_plain_text_outside_loopback_is_refused(raw: dict[str, object]) -> None:
    (line,) = errors_for(raw)
    assert "tls" in line.lower() or "https" in line


@pytest.mark.parametrize(
    "raw",
    [
        {"aas": {"tls": False, "grpc_target": "127.0.0.1:50051", "rest_url": "http://[::1]:8080"}},
        {"mqtt": {"host": "localhost"}},
        {"auth": {"token_url": "http://127.0.0.1:8080/oauth2/token"}},
    ],
)
def test_plain_text_on_loopback_is_fine(raw: dict[str, object]) -> None:
    build_config(raw, {})


def test_loopback_detection() -> None:
    assert (
        is_loopback_host("127.0.0.9") and is_loopback_host("::1") and is_loopback_host("localhost")
    )
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("example.org")


def test_environment_overrides_file_values() -> None:
    env = {
        "EDGE_RECORDER__AUDIO__RATE": "48000",
        "EDGE_RECORDER__PANEL__LED": "single",
        "EDGE_RECORDER__PANEL__LED_PINS": "[12]",
        "UNRELATED": "1",
    }
    config = build_config({"audio": {"rate": 16000}}, env)
    assert config.audio.rate == 48000
    assert config.panel.led_pins == [12]


def test_environment_errors_name_the_key() -> None:
    (line,) = errors_for({}, {"EDGE_RECORDER__AUDIO__CHANNELS": "many"})
    assert line.startswith("audio.channels: ")
    assert errors_for({}, {"EDGE_RECORDER__AUDIO__RAET": "1"}) == [
        "audio.raet: unknown key; did you mean 'rate'?"
    ]


def test_env_override_tree_is_nested_and_lowercased() -> None:
    assert env_overrides({"EDGE_RECORDER__A__B_C": "x", "EDGE_RECORDER__D": '{"e": 1}'}) == {
        "a": {"b_c": "x"},
        "d": {"e": 1},
    }


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio\nrate = 1\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(bad, environ={})


def test_device_id_must_be_topic_safe() -> None:
    (line,) = errors_for({"device": {"id": "room 3/#"}})
    assert line.startswith("device.id: ")


def test_panel_led_pin_count_follows_led_kind() -> None:
    (line,) = errors_for({"panel": {"led": "single"}})
    assert "needs 1 pin" in line
    (line,) = errors_for({"panel": {"record_button_pin": 5}})
    assert "different" in line


def test_byte_sizes_accept_units() -> None:
    config = build_config({"spool": {"max_bytes": "2GiB", "segment_bytes": "4MiB"}}, {})
    assert config.spool.max_bytes == 2 * 1024**3
    assert config.spool.segment_bytes == 4 * 1024**2


@pytest.mark.parametrize("mode", [0o777, 0o666, 0o662, 0o002])
def test_a_control_socket_others_may_write_is_refused(mode: int) -> None:
    (line,) = errors_for({"control": {"socket_mode": mode}})
    assert line.startswith("control.socket_mode: ") and "every local user" in line
    assert f"{mode:#o}" in line


@pytest.mark.parametrize("mode", [0o660, 0o600, 0o770, 0o640, 0o664])
def test_control_socket_modes_without_o_plus_w_are_fine(mode: int) -> None:
    assert build_config({"control": {"socket_mode": mode}}, {}).control.socket_mode == mode
