"""Array geometry: arrival delays and the grid of look directions the tracker searches.

Directions are unit vectors (x, y, z) in the board's frame (z up out of the board). A far-field
source in direction u reaches a microphone at p earlier than the centre by p·u / c, so its
arrival time relative to the centre is t = -p·u / c. Only the half-space in front of the
board (z ≥ 0) is searched: a flat array cannot tell +z from -z, and the board lies on a table
or hangs on a wall facing the room.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SPEED_OF_SOUND = 343.0  # m/s, ~20 °C
F64 = npt.NDArray[np.float64]


def direction(azimuth_deg: float, elevation_deg: float) -> F64:
    """Unit vector for an azimuth (counter-clockwise from +x) and an elevation above the board."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def angle_deg(a: F64, b: F64) -> float:
    """Angle between two directions, in degrees."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def search_grid(azimuth_step_deg: float = 5.0, elevation_step_deg: float = 10.0) -> F64:
    """(G, 3) directions covering the front half-space, the zenith once."""
    points = [
        direction(az, el)
        for el in np.arange(0.0, 90.0, elevation_step_deg)
        for az in np.arange(0.0, 360.0, azimuth_step_deg)
    ]
    points.append(np.array([0.0, 0.0, 1.0]))
    return np.array(points)


def arrival_times(positions_m: F64, directions: F64) -> F64:
    """(..., M) arrival time of a plane wave from each direction at each mic, centre = 0."""
    return -(directions @ positions_m.T) / SPEED_OF_SOUND


def steering(positions_m: F64, u: F64, freqs_hz: F64) -> npt.NDArray[np.complex128]:
    """(F, M) phase of a unit plane wave from u at each mic: X_m = S · a_m."""
    t = arrival_times(positions_m, u)
    result: npt.NDArray[np.complex128] = np.exp(-2j * np.pi * np.outer(freqs_hz, t))
    return result
