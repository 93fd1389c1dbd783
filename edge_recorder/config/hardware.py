"""Hardware profiles: what a given mic array needs (card name, channels, format, mix, boot
overlays, on-board parts), so a config can say `audio.profile = "respeaker-usb-v2"`.

A profile's `[audio]` and `[panel]` tables are validated by the very models the config uses
(AudioConfig, PanelConfig), so a profile can never hold a value the daemon would refuse. The
raw-tree hook below fills `audio.*` (and `panel.*`) from the profile before validation;
anything the config sets itself wins.

Profiles ship inside the package (`edge_recorder/config/profiles/`, found after `pip install`);
`hardware/profiles/` in the source tree is the documented copy installers read, kept
identical by a test. Site-specific profiles go in /etc/edge-recorder/profiles (searched
first; `EDGE_RECORDER_PROFILES` may name another directory).
"""

from __future__ import annotations

import fnmatch
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_recorder.config.base import GpioPin
from edge_recorder.config.errors import ConfigError, read_toml
from edge_recorder.config.model import AudioConfig, PanelConfig

PACKAGE_PROFILES = Path(__file__).resolve().parent / "profiles"
SITE_PROFILES = Path("/etc/edge-recorder/profiles")
PROFILES_ENV = "EDGE_RECORDER_PROFILES"

# Keys a profile may set: hardware facts, not site policy (source, speed, backoff...).
PROFILE_AUDIO_KEYS = frozenset(
    {
        "device",
        "rate",
        "channels",
        "format",
        "period_ms",
        "buffer_periods",
        "mix_weights",
        "mic_positions_mm",
        "array_processing",
        "array_batch_hops",
        "array_calibration_fallback",
        "gain_db",
        "dc_removal",
    }
)
PROFILE_PANEL_KEYS = frozenset(
    {
        "record_button_pin",
        "privacy_button_pin",
        "buttons_active_low",
        "led",
        "led_pins",
        "led_active_high",
        "buzzer_pin",
    }
)
# When a config sets the key on the left itself, the profile's keys on the right no longer
# fit it (6 weights for 2 channels, 3 pins for a single LED) and are not filled in.
_PARTNERS = {
    "channels": (
        "mix_weights",
        "mic_positions_mm",
        "array_processing",
        "array_batch_hops",
        "array_calibration_fallback",
    ),
    "led": ("led_pins",),
}
_CARD_INDEX = re.compile(r"^(plug)?hw:(CARD=)?\d")  # same rule as audio.sources.uses_card_index
_BOOT_LINE = re.compile(r"^(dtoverlay|dtparam|gpio)=[A-Za-z0-9_.,=:-]+$")


class OnboardPart(BaseModel):
    """A button or light the board itself carries."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["button", "led", "led-ring", "switch"]
    name: str
    interface: Literal["gpio", "spi", "i2c", "usb"]
    gpio: GpioPin | None = Field(None, description="BCM pin, for GPIO parts.")
    count: int = Field(1, ge=1, le=64)
    notes: str = ""


class BootSetup(BaseModel):
    """What the Pi needs before the card appears."""

    model_config = ConfigDict(extra="forbid")

    config_txt: list[str] = Field(default_factory=list, description="Lines for config.txt.")
    steps: list[str] = Field(default_factory=list, description="Other install steps.")

    @field_validator("config_txt")
    @classmethod
    def _lines(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if not _BOOT_LINE.match(line):
                raise ValueError(f"not a config.txt dtoverlay/dtparam line: {line!r}")
        return lines


def _check_table(
    table: dict[str, Any], allowed: frozenset[str], model: type[BaseModel], section: str
) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{section} keys not allowed in a profile: {', '.join(unknown)}")
    try:
        model.model_validate(table)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or section
        raise ValueError(f"{section}.{where}: {first['msg']}") from None
    return table


class Profile(BaseModel):
    """One mic array (or mic) and what it needs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    title: str
    kind: Literal["usb", "hat", "i2s"]
    card_match: list[str] = Field(
        min_length=1, description="Glob patterns (case-insensitive) on ALSA card id or name."
    )
    url: str = ""
    notes: str = ""
    audio: dict[str, Any]
    panel: dict[str, Any] = Field(default_factory=dict)
    boot: BootSetup = Field(default_factory=BootSetup)
    onboard: list[OnboardPart] = Field(default_factory=list)

    @field_validator("audio")
    @classmethod
    def _audio(cls, table: dict[str, Any]) -> dict[str, Any]:
        _check_table(table, PROFILE_AUDIO_KEYS, AudioConfig, "audio")
        if "device" not in table:
            raise ValueError("audio.device is required")
        if _CARD_INDEX.match(str(table["device"])):
            raise ValueError("audio.device must name the card (CARD=<id>), not its index")
        return table

    @field_validator("panel")
    @classmethod
    def _panel(cls, table: dict[str, Any]) -> dict[str, Any]:
        return _check_table(table, PROFILE_PANEL_KEYS, PanelConfig, "panel")

    def matches(self, card_id: str, card_name: str = "") -> bool:
        """True when an ALSA card (by id or name) is this profile's hardware."""
        names = [n.lower() for n in (card_id, card_name) if n]
        return any(
            fnmatch.fnmatchcase(n, pattern.lower()) for pattern in self.card_match for n in names
        )

    def device_for(self, card_id: str) -> str:
        """The profile's PCM name, pointed at the card id actually present."""
        return re.sub(r"CARD=[^,\s]+", f"CARD={card_id}", str(self.audio["device"]))


def profile_dirs() -> list[Path]:
    """Where profiles are looked up, first match wins."""
    dirs = [Path(os.environ[PROFILES_ENV])] if os.environ.get(PROFILES_ENV) else []
    return [*dirs, SITE_PROFILES, PACKAGE_PROFILES]


def load_profile_file(path: Path) -> Profile:
    """Read and validate one profile; problems become ConfigError lines naming the file."""
    raw = read_toml(path)
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}: {where}: {message}")
        raise ConfigError(lines, str(path)) from None
    if profile.name != path.stem:
        raise ConfigError([f"{path}: name = {profile.name!r} must match the file name"])
    return profile


@cache
def _cached(path: Path, mtime_ns: int) -> Profile:
    return load_profile_file(path)


def all_profiles() -> dict[str, Profile]:
    """Every profile by name (site profiles shadow packaged ones)."""
    found: dict[str, Profile] = {}
    for directory in reversed(profile_dirs()):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = _cached(path, path.stat().st_mtime_ns)
    return dict(sorted(found.items()))


def load_profile(name: str) -> Profile:
    """The profile called `name`, or ConfigError listing the known ones."""
    for directory in profile_dirs():
        path = directory / f"{name}.toml"
        if re.fullmatch(r"[a-z0-9][a-z0-9-]{1,63}", name) and path.is_file():
            return _cached(path, path.stat().st_mtime_ns)
    known = ", ".join(all_profiles()) or "none found"
    raise ConfigError([f"audio.profile: unknown hardware profile {name!r} (known: {known})"])


def _fill(profile_table: dict[str, Any], config_table: dict[str, Any]) -> dict[str, Any]:
    merged = dict(profile_table)
    for key, partners in _PARTNERS.items():
        if key in config_table:
            for partner in partners:
                merged.pop(partner, None)
    merged.update(config_table)
    return merged


def apply_profile(tree: dict[str, Any]) -> dict[str, Any]:
    """Raw-tree hook: fill audio/panel from `audio.profile`; the config's own keys win."""
    audio = tree.get("audio")
    if not isinstance(audio, dict) or not audio.get("profile"):
        return tree
    profile = load_profile(str(audio["profile"]))
    out = dict(tree)
    out["audio"] = _fill(profile.audio, audio)
    panel = tree.get("panel", {})
    if profile.panel and isinstance(panel, dict):
        out["panel"] = _fill(profile.panel, panel)
    return out


def outvoted(tree: dict[str, Any]) -> list[str]:
    """The profile's audio keys a config file sets back to the generic default: almost always
    a copied example (before 2026-12 the shipped config wrote out every key), not a choice."""
    audio = tree.get("audio")
    if not isinstance(audio, dict) or not audio.get("profile"):
        return []
    try:
        profile = load_profile(str(audio["profile"]))
    except ConfigError:
        return []  # the loader says what is wrong with the name
    lines = []
    for key, value in profile.audio.items():
        field = AudioConfig.model_fields[key]
        default = field.get_default(call_default_factory=True)
        if key in audio and audio[key] != value and audio[key] == default:
            theirs = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            lines.append(
                f"audio.{key} = {audio[key]!r} (the generic default) outvotes profile "
                f"{profile.name}'s {theirs}: delete the line to use the profile"
            )
    return lines
