"""The main far-field set's candidates: every blind array kind, none that needs a room."""

from __future__ import annotations

import numpy as np

from devtools.farfield import candidates
from edge_recorder.audio.array import KINDS


def test_every_blind_kind_is_a_candidate_and_each_builds() -> None:
    made, note = candidates.factories()
    kinds = {f.array_kind for f in made if f.array_kind}
    assert kinds == set(KINDS) - set(candidates.NEEDS_ROOM_CALIBRATION), note
    assert "calibrated" in KINDS and "calibrated" not in kinds  # scored by calibration_eval
    positions = np.array([[0.03, 0.0, 0.0], [0.0, 0.03, 0.0], [-0.03, 0.0, 0.0], [0, -0.03, 0]])
    for factory in made:
        out = factory.build(positions).process(np.zeros((1920, 4), np.float32))  # 120 ms
        assert out.shape == (1920,), factory.name
