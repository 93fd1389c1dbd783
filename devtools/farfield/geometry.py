"""The exam room, the device on its wall and the talkers: where every microphone and source is.

The device hangs on the wall y = 0 of a shoebox room, its board parallel to the wall. A
profile's `mic_positions_mm` are in the board's frame (array centre at the origin, z out of the
board); on the wall the board's x runs along the wall (room x), its y points up (room z) and its
z points into the room (room y). Keeping the profiles' own coordinates means the beamformers are
evaluated with exactly the geometry the device will be configured with. The mics sit 1 cm in
front of the wall: the wall's reflection then only colours the top of the band (its first notch
would be at c/(2·2 cm) ≈ 8.6 kHz, above 8 kHz), as for a board on a wall, which baffles it.

Only the microphones are simulated (the 6-mic board's two playback-loopback channels are not
mics and today's mix already gives them weight 0), and everything runs at 16 kHz, the
pipeline's output rate, whatever the profile captures at (the I2S pair's 48 kHz is resampled
before anything listens to it; its spacing is what matters here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_recorder.config.hardware import load_profile

F64 = npt.NDArray[np.float64]

# Profiles with a bare microphone array (the USB arrays clean their audio on board: out of scope).
PROFILES = ("respeaker-4mic-array", "respeaker-6mic-array", "respeaker-2mic-hat", "i2s-mems-pair")
ROOM_M = (4.0, 5.0, 2.8)  # width (x, along the device's wall), depth (y), height (z)
DEVICE_M = (2.0, 0.01, 1.5)  # array centre: mid-wall, 1 cm proud of it, 1.5 m high
VENT_M = (3.1, 3.6, 2.7)  # the ceiling HVAC vent with its fan: the point noise source
_MARGIN_M = 0.3  # talkers stay this far from the walls
_MIN_SEPARATION_DEG = 30.0


def board_positions_m(profile: str) -> F64:
    """(M, 3) mic positions in metres in the board's frame, in channel order, from the profile."""
    mm = load_profile(profile).audio.get("mic_positions_mm")
    if not mm:
        raise ValueError(f"profile {profile!r} has no audio.mic_positions_mm")
    return np.asarray(mm, dtype=np.float64) / 1000.0


def board_to_room(board_m: F64) -> F64:
    """Board frame → room coordinates (x along the wall, board y up, board z into the room)."""
    x, y, z = board_m[:, 0], board_m[:, 1], board_m[:, 2]
    room: F64 = np.stack([x, z, y], axis=1) + np.asarray(DEVICE_M, np.float64)
    return room


@dataclass(frozen=True)
class Talker:
    """One talker's place: azimuth from the wall's normal (+ toward room +x), horizontal
    distance from the array centre, and mouth height."""

    role: str
    azimuth_deg: float
    distance_m: float
    height_m: float

    def position(self) -> tuple[float, float, float]:
        a = math.radians(self.azimuth_deg)
        return (
            DEVICE_M[0] + self.distance_m * math.sin(a),
            DEVICE_M[1] + self.distance_m * math.cos(a),
            self.height_m,
        )


def _inside(point: tuple[float, float, float]) -> bool:
    return all(_MARGIN_M <= p <= size - _MARGIN_M for p, size in zip(point, ROOM_M, strict=True))


def place_talkers(seed: int) -> tuple[Talker, Talker]:
    """The clinician (standing, 1-1.8 m) and the patient (seated on the exam table, 1.8-3 m), at
    azimuths at least 30° apart, drawn per seed so every seed is another consultation layout."""
    rng = np.random.default_rng([seed, 23])
    while True:
        clinician = Talker(
            "clinician",
            float(rng.uniform(-60, 60)),
            float(rng.uniform(1.0, 1.8)),
            float(rng.uniform(1.5, 1.7)),
        )
        patient = Talker(
            "patient",
            float(rng.uniform(-60, 60)),
            float(rng.uniform(1.8, 3.0)),
            float(rng.uniform(1.1, 1.3)),
        )
        apart = abs(clinician.azimuth_deg - patient.azimuth_deg) >= _MIN_SEPARATION_DEG
        if apart and _inside(clinician.position()) and _inside(patient.position()):
            return clinician, patient
