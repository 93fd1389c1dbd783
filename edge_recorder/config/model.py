"""The daemon's whole configuration: one pydantic model, loaded from TOML plus environment.

Every section forbids unknown keys so a typo is an error, not a silently ignored setting.
Secrets are never values here, only references (`*_file` keys or systemd credential names).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from edge_recorder.config.audio import AudioConfig as AudioConfig  # re-exported: a section
from edge_recorder.config.base import (
    Endpoint,
    GpioPin,
    PositiveSeconds,
    Seconds,
    Section,
)
from edge_recorder.config.services.aas import AasConfig, AuthConfig
from edge_recorder.config.services.aws import AwsScribeConfig
from edge_recorder.config.services.corti import CortiConfig
from edge_recorder.config.services.dice import DiceConfig

DEFAULT_CONFIG_PATH = Path("/etc/edge-recorder/config.toml")
# `mqtt.tls = false` is plain text: allowed for a loopback broker only.
BrokerHost = Annotated[str, Endpoint(kind="host", tls_flag="tls")]
ENV_PREFIX = "EDGE_RECORDER__"


class DeviceConfig(Section):
    """Identity of this device in the fleet (never patient data)."""

    id: str = Field(
        default_factory=lambda: re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64],
        description="Device id used in MQTT topics and logs; defaults to the hostname.",
    )
    location: str = Field("", max_length=128, description="Free-text room label for dashboards.")

    @field_validator("id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError("must be 1-64 characters of letters, digits, '_' or '-'")
        return value


class VadConfig(Section):
    """Voice activity detection: it measures speech; by default it never drops audio."""

    engine: Literal["silero", "webrtc", "energy"] = Field(
        "silero", description="VAD engine (see docs/audio.md for the measured choice)."
    )
    silero_backend: Literal["numpy", "onnxruntime"] = Field(
        "numpy",
        description="How Silero runs: 'numpy' (the same network and weights, no onnxruntime: "
        "~30 MB less memory) or 'onnxruntime'. Probabilities agree within float32 rounding.",
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Speech probability threshold.")
    hangover_ms: int = Field(
        300, ge=0, le=5000, description="Speech is held this long after it stops."
    )
    webrtc_aggressiveness: int = Field(2, ge=0, le=3, description="WebRTC VAD mode 0-3.")
    batch_ms: int = Field(
        400,
        ge=0,
        le=2000,
        description="Audio scored per VAD call: fewer, larger calls cost less CPU; speech "
        "indicators lag by up to this much. Audio itself never waits for it (0 = every chunk; "
        "with trim_silence_over_s set, every chunk is scored at once).",
    )
    auto_stop_after_s: Seconds = Field(
        600.0, description="Stop the encounter after this long without speech (0 = never)."
    )
    auto_stop_warning_s: Seconds = Field(
        60.0, description="Warn this long before the no-speech auto-stop."
    )
    trim_silence_over_s: PositiveSeconds | None = Field(
        None, description="Drop silences longer than this (off by default: nothing dropped)."
    )


MIN_CHUNK_MS = 20


class EncodingConfig(Section):
    """How the processed 16 kHz mono audio is encoded before it is spooled."""

    codec: Literal["pcm16", "opus", "flac"] = Field("pcm16", description="Encoder.")
    opus_bitrate: int = Field(32000, ge=6000, le=256000, description="Ogg Opus bit rate (bit/s).")
    opus_complexity: int = Field(5, ge=0, le=10, description="Opus encoder complexity 0-10.")
    flac_compression_level: int = Field(5, ge=0, le=8, description="FLAC level 0-8.")
    chunk_ms: int = Field(
        120,
        ge=MIN_CHUNK_MS,
        le=1000,
        description="Audio per spool record and per live message: each message has a fixed "
        "CPU cost, and the oldest sample in it waits this long (see the benchmarks in "
        "docs/make-targets-and-benchmarks.md). Unset: audio.period_ms (at least 20).",
    )


class SpoolConfig(Section):
    """The encrypted on-disk spool: the single source of truth for recorded audio."""

    dir: Path = Field(Path("/var/lib/edge-recorder/spool"), description="Spool directory.")
    key_file: Path = Field(
        Path("/var/lib/edge-recorder/spool.key"),
        description="AES-256 device key; created (mode 0600) on first run if absent. "
        "The systemd credential 'spool-key' takes precedence when present.",
    )
    max_bytes: ByteSize = Field(
        ByteSize(8 * 1024**3), description="Hard cap on spool size (e.g. '8GiB')."
    )
    high_water_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Above this share of max_bytes new encounters are refused with an alarm.",
    )
    reserve_free_bytes: ByteSize = Field(
        ByteSize(256 * 1024**2), description="Free disk space always left for the system."
    )
    fsync_interval_s: PositiveSeconds = Field(
        1.0, le=10, description="Most audio (seconds) at risk on power loss."
    )
    segment_bytes: ByteSize = Field(
        ByteSize(16 * 1024**2), description="Segment file size before rolling to a new one."
    )


class UplinkConfig(Section):
    """Which service receives the audio, and how delivery retries."""

    service: Literal["aas", "corti", "dice", "aws-connect-health", "aws-healthscribe"] = Field(
        "aas", description="Delivery target service (its own section holds its settings)."
    )
    live: bool = Field(True, description="Stream the recording live when online.")
    live_transport: Literal["grpc", "websocket"] = Field(
        "grpc", description="Transport for live streaming to AAS."
    )
    retry_initial_s: PositiveSeconds = Field(1.0, description="First retry back-off.")
    retry_max_s: PositiveSeconds = Field(60.0, description="Back-off ceiling.")
    offline_probe_s: PositiveSeconds = Field(
        5.0,
        le=60,
        description="While the service is unreachable (no answer at all, not a refusal), "
        "one side-effect-free request this often finds the network back, whatever the "
        "retry back-off has grown to: after an outage the backlog restarts within this.",
    )
    connect_timeout_s: PositiveSeconds = Field(10.0, description="Connect timeout.")
    request_timeout_s: PositiveSeconds = Field(30.0, description="Per-request deadline.")
    keepalive_s: PositiveSeconds = Field(20.0, description="gRPC/TCP keepalive interval.")
    rest_chunk_bytes: ByteSize = Field(
        ByteSize(64 * 1024), description="Audio bytes per REST storeChunk."
    )


class PanelConfig(Section):
    """GPIO buttons, LEDs and buzzer on the wall unit."""

    enabled: bool = Field(True, description="Drive the GPIO panel.")
    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "mock"] = Field(
        "auto", description="gpiozero pin factory ('mock' for simulation, 'lgpio' on a Pi 5)."
    )
    record_button_pin: GpioPin | None = Field(17, description="BCM pin of the record button.")
    privacy_button_pin: GpioPin | None = Field(
        None, description="BCM pin of the privacy (pause/resume) button."
    )
    buttons_active_low: bool = Field(True, description="Buttons pull the pin to ground.")
    hold_action: Literal["none", "pause"] = Field(
        "none", description="Holding the record button: nothing, or pause/resume."
    )
    hold_time_s: PositiveSeconds = Field(1.5, description="How long a press counts as a hold.")
    bounce_time_s: Seconds = Field(0.05, le=1, description="Button debounce time.")
    led: Literal["none", "single", "pwm", "rgb"] = Field("rgb", description="LED kind.")
    led_pins: list[GpioPin] = Field(
        default_factory=lambda: [5, 6, 13], description="LED pin(s): one, or red/green/blue."
    )
    led_active_high: bool = Field(True, description="LED lit when the pin is high.")
    buzzer_pin: GpioPin | None = Field(None, description="BCM pin of an optional buzzer.")

    @model_validator(mode="after")
    def _pins(self) -> PanelConfig:
        wanted = {"none": 0, "single": 1, "pwm": 1, "rgb": 3}[self.led]
        if len(self.led_pins) != wanted:
            raise ValueError(f"panel.led_pins needs {wanted} pin(s) for led = '{self.led}'")
        used = [
            p
            for p in (self.record_button_pin, self.privacy_button_pin, self.buzzer_pin)
            if p is not None
        ] + list(self.led_pins)
        if len(used) != len(set(used)):
            raise ValueError("panel pins must all be different")
        return self


class MqttConfig(Section):
    """Fleet status over MQTT; off unless a host is set."""

    model_config = ConfigDict(title="mqtt")

    host: BrokerHost | None = Field(None, description="Broker host; MQTT is off when unset.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    topic_prefix: str = Field("edge-recorder", description="Topic prefix <prefix>/<device_id>/.")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT version (5 falls back).")
    tls: bool = Field(False, description="TLS to the broker (required outside loopback).")
    ca_file: Path | None = Field(None, description="CA bundle for the broker.")
    client_cert_file: Path | None = Field(None, description="Client certificate.")
    client_key_file: Path | None = Field(None, description="Client private key.")
    username: str | None = Field(None, description="Broker user name.")
    password_file: Path | None = Field(
        None, description="File with the broker password; default: credential 'mqtt-password'."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")
    status_interval_s: PositiveSeconds = Field(30.0, description="Status republish interval.")
    queue_max: int = Field(1000, ge=10, description="Events kept while the broker is away.")
    homeassistant_discovery: bool = Field(False, description="Publish HA discovery configs.")
    birth_seq_file: Path = Field(
        Path("/var/lib/edge-recorder/mqtt-birth-seq"),
        description="Where the MQTT birth sequence number is kept across restarts.",
    )
    max_command_bytes: int = Field(
        16384, ge=256, le=1048576, description="Longest accepted MQTT command body."
    )
    command_rate_per_s: float = Field(
        2.0,
        gt=0,
        le=1000,
        description="MQTT commands accepted per second, sustained, for each class (start/"
        "stop/pause/resume; all others); more are refused 'rate_limited'.",
    )
    command_burst: int = Field(
        20, ge=1, le=10000, description="MQTT commands of a class accepted back to back."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "#+") or value.startswith("/"):
            raise ValueError("must be a non-empty topic without wildcards or leading '/'")
        return value.rstrip("/")


class ControlConfig(Section):
    """The local control socket used by `edge-recorder ctl`."""

    socket: Path = Field(Path("/run/edge-recorder/control.sock"), description="Socket path.")
    socket_mode: int = Field(
        0o660,
        ge=0,
        le=0o777,
        description="Socket file mode; never writable by others (connecting needs write "
        "permission, so o+w would let every local user control the recorder).",
    )
    max_request_bytes: int = Field(65536, ge=256, description="Longest accepted request line.")
    read_timeout_s: PositiveSeconds = Field(
        10.0, description="A client must send a complete request line within this time."
    )

    @field_validator("socket_mode")
    @classmethod
    def _not_world_writable(cls, value: int) -> int:
        if value & 0o002:
            raise ValueError(
                f"{value:#o} lets every local user start, stop and read the recorder "
                "(o+w); use 0660 and add the users to the service's group"
            )
        return value


class LogConfig(Section):
    """Logging: key=value lines on stderr, native journald fields under systemd."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Level.")
    format: Literal["auto", "logfmt", "journal"] = Field(
        "auto", description="'auto' uses journald when JOURNAL_STREAM is set."
    )


class Config(Section):
    """The whole daemon configuration."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    vad: VadConfig = Field(default_factory=VadConfig)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    aas: AasConfig = Field(default_factory=AasConfig)
    corti: CortiConfig = Field(default_factory=CortiConfig)
    dice: DiceConfig = Field(default_factory=DiceConfig)
    aws: AwsScribeConfig = Field(default_factory=AwsScribeConfig)
    panel: PanelConfig = Field(default_factory=PanelConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _chunk_follows_period(self) -> Config:
        """An unset chunk is one capture period: a chunk longer than the period only makes the
        oldest sample wait (a profile's shorter period would otherwise buy no latency)."""
        if "chunk_ms" not in self.encoding.model_fields_set:
            self.encoding.chunk_ms = max(MIN_CHUNK_MS, self.audio.period_ms)
        return self


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """Nested dict from `EDGE_RECORDER__SECTION__KEY=value` variables (values stay strings).

    Pydantic's lax mode turns "16000" into 16000; a value that looks like a JSON list or
    object is parsed so list keys can be overridden too.
    """
    import json

    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or absurdly nested or long
                value = raw
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into a copy of `base`, recursing into tables."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
