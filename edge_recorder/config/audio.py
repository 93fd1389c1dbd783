"""The `[audio]` section: where audio comes from and how the channels become one signal.

Its own module because it is the section the hardware profiles fill (config/hardware.py) and
the largest; `edge_recorder.config.model` re-exports it with the other sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_recorder.config.base import PositiveSeconds, SampleFormat, Section

# The array kinds that need no room calibration (edge_recorder.audio.array.KINDS less
# "calibrated"; a test keeps the two lists equal): what "calibrated" may fall back to.
BlindArrayKind = Literal[
    "average", "das", "mvdr", "mvdr-postfilter", "wpe-mvdr", "mvdr-wpe", "mvdr-wpe-postfilter"
]


class AudioConfig(Section):
    """Where audio comes from and how it is shaped before voice detection and encoding."""

    source: Literal["alsa", "wav", "synthetic"] = Field(
        "alsa", description="Capture source: an ALSA device, a WAV file, or a generated signal."
    )
    profile: str | None = Field(
        None, description="Hardware profile name from hardware/profiles (fills the fields below)."
    )
    device: str = Field(
        "plughw:CARD=ArrayUAC10,DEV=0",
        description="ALSA PCM name; use CARD=<name>, never a card index (indexes change).",
    )
    rate: int = Field(16000, ge=8000, le=48000, description="Capture sample rate in Hz.")
    channels: int = Field(1, ge=1, le=8, description="Capture channel count.")
    format: SampleFormat = Field("S16_LE", description="Capture sample format.")
    period_ms: int = Field(
        120,
        ge=5,
        le=200,
        description="ALSA period length in milliseconds; encoding.chunk_ms follows it unless "
        "set (one capture wake-up per encoder chunk). The array profiles use 80 ms so a "
        "beam's delay still fits the 150 ms live latency goal.",
    )
    buffer_periods: int = Field(8, ge=2, le=64, description="ALSA buffer size in periods.")
    mix_weights: list[float] = Field(
        default_factory=list,
        description="Per-channel weights for the mono mix; empty means an equal mix.",
    )
    mic_positions_mm: list[tuple[float, float, float]] = Field(
        default_factory=list,
        max_length=8,
        description="Where each microphone sits, in channel order: (x, y, z) in mm with the "
        "array's centre at the origin, z up out of the board. Channels after the last one "
        "listed are not microphones (a playback loopback). Empty: the geometry is unknown. "
        "The hardware profiles fill it; array processing needs it.",
    )
    array_processing: Literal[BlindArrayKind, "calibrated"] = Field(
        "average",
        description="How the microphones become one signal. 'average': the mono mix above "
        "(mix_weights). 'das' (delay-and-sum) and 'mvdr' steer a beam at whoever is talking, "
        "found from the array itself, to take a far-field voice out of room noise and "
        "reverberation; 'mvdr' also nulls steady noise sources (fans, monitors); "
        "'mvdr-postfilter' then attenuates the noise left between words (at most 12 dB). "
        "'wpe-mvdr' and 'mvdr-wpe' also remove late reverberation (online WPE, before or "
        "after the beam); 'mvdr-wpe-postfilter' does both. 'calibrated' (opt-in) beams at "
        "the talker spots measured in this room with `edge-recorder calibrate-array` "
        "(array_calibration); without a usable calibration it runs "
        "array_calibration_fallback and says so (log, check, status warning). "
        "All but 'average' need mic_positions_mm for at least 2 microphones and add live "
        "latency (array_batch_hops; the recording's timeline is unchanged).",
    )
    array_calibration: Path = Field(
        Path("/var/lib/edge-recorder/array-calibration.npz"),
        description="The room's array calibration for array_processing = 'calibrated', "
        "written by `edge-recorder calibrate-array finish`; read again at the first "
        "recording after it changes. Made for one room and one mounting: calibrate again "
        "after moving the device or the furniture.",
    )
    array_calibration_fallback: BlindArrayKind = Field(
        "mvdr-wpe-postfilter",
        description="The blind kind array_processing = 'calibrated' uses when the "
        "calibration file is missing or refused (wrong geometry, damaged); never "
        "'calibrated' itself. The hardware profiles set their own blind beam "
        "('mvdr-postfilter' on the 6-mic HAT, whose budget the WPE kinds exceed).",
    )
    array_batch_hops: Literal[2, 4, 8] = Field(
        8,
        description="STFT hops (16 ms each) the beamformer transforms at once: the live "
        "latency it adds is hops x 16 ms + 16 ms (8: 144 ms, 4: 80 ms, 2: 48 ms) for ~1 ms "
        "of CPU per audio second more at 2 (adaptation runs on the same 256 ms windows "
        "either way, so the output is the same).",
    )
    gain_db: float = Field(0.0, ge=-40, le=40, description="Gain applied after the mix.")
    dc_removal: bool = Field(True, description="Remove DC offset (high-pass below ~20 Hz).")
    output_rate: Literal[16000] = Field(16000, description="Rate after resampling (fixed).")
    digital_silence_s: PositiveSeconds = Field(
        5.0,
        le=10,
        description="All-zero or constant input for this long raises a dead-mic alarm "
        "(at most 10 s: the alarm must come within 10 s).",
    )
    reopen_backoff_max_s: PositiveSeconds = Field(
        10.0, description="Ceiling of the back-off between attempts to re-open a lost device."
    )
    wav_path: Path | None = Field(None, description="WAV file for source = 'wav'.")
    speed: float = Field(
        1.0, ge=0, description="Pace of simulated sources: 1.0 real time, 0 as fast as possible."
    )

    @field_validator("array_calibration_fallback", mode="before")
    @classmethod
    def _blind_fallback(cls, value: object) -> object:
        if value == "calibrated":  # said plainly: the Literal's own message lists the kinds
            raise ValueError(
                "the fallback is what runs when the calibration cannot be used: choose a "
                "blind kind such as 'mvdr-wpe', not 'calibrated'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AudioConfig:
        if self.source == "wav" and self.wav_path is None:
            raise ValueError("audio.wav_path is required when audio.source = 'wav'")
        if self.mix_weights and len(self.mix_weights) != self.channels:
            raise ValueError(
                f"audio.mix_weights has {len(self.mix_weights)} weights "
                f"for {self.channels} channels"
            )
        if len(self.mic_positions_mm) > self.channels:
            raise ValueError(
                f"audio.mic_positions_mm lists {len(self.mic_positions_mm)} microphones "
                f"for {self.channels} channels"
            )
        if self.array_processing != "average" and len(self.mic_positions_mm) < 2:
            raise ValueError(
                f"audio.array_processing = '{self.array_processing}' needs "
                "audio.mic_positions_mm for at least 2 microphones "
                f"(it lists {len(self.mic_positions_mm)}); use 'average' without a geometry"
            )
        return self
