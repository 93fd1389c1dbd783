"""The machine reference the CPU figures are read by: a fixed workload's CPU time."""

from __future__ import annotations

import pytest

from benchmarks import _machine


def test_the_reference_is_the_least_of_its_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A neighbour's load only ever inflates a run: the least one is the machine's speed."""
    runs = iter([5.0, 3.0, 4.0])
    monkeypatch.setattr(_machine, "_once", lambda: next(runs))
    assert _machine.reference_ms(repeats=3) == 3.0


def test_the_workload_takes_measurable_cpu_time() -> None:
    assert _machine._once() > 0.5  # ms: a run too short to measure would read 0
