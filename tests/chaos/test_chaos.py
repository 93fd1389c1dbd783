"""A fixed-seed set of delivery chaos trials (see trials.py); `make chaos` runs more."""

from __future__ import annotations

import pytest

from tests.chaos.trials import run_seed, trial_seeds

FIXED_SEEDS = trial_seeds(20261121, 32)

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("seed", FIXED_SEEDS)
async def test_trial_delivers_every_byte_exactly_once(seed: int) -> None:
    outcome = await run_seed(seed, timeout_s=60)
    faults = ", ".join(f"{s.fault}@{s.at_chunk}" for s in outcome.plan.steps)
    assert outcome.ok, f"seed {seed} faults [{faults}]: " + "; ".join(outcome.problems)
