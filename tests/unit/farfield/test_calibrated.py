"""The spot-calibration prototype's scene handling (devtools/farfield/calibrated.py): a moved
talker is exactly where it was asked to be, and a moved scene changes only the speech."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devtools.farfield import calibrated, geometry, scene


@pytest.mark.parametrize(("d", "angle"), [(0.1, 0.0), (0.2, math.pi / 4), (0.3, 2.0)])
def test_a_shifted_talker_moves_that_far_horizontally(d: float, angle: float) -> None:
    for talker in geometry.place_talkers(1):
        shifted = calibrated._shifted(talker, d, angle)
        step = np.subtract(shifted.position(), talker.position())
        assert step[2] == pytest.approx(0.0)  # the mouth stays at its height
        assert np.hypot(step[0], step[1]) == pytest.approx(d)
        assert math.atan2(step[1], step[0]) == pytest.approx(angle)


def test_a_moved_scene_changes_the_speech_only() -> None:
    spec = scene.SceneSpec("respeaker-2mic-hat", 0.3, 1.0, seed=2)
    here = scene.build(spec)
    clinician, patient = geometry.place_talkers(spec.seed)
    there = scene.build(spec, (calibrated._shifted(clinician, 0.3, 0.0), patient))
    np.testing.assert_array_equal(there.noise, here.noise)
    np.testing.assert_array_equal(there.dry, here.dry)
    assert not np.allclose(there.speech, here.speech, atol=1e-4)
