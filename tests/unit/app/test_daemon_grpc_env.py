"""`run` picks gRPC's classic poller for the live stream unless the operator chose otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.app import daemon
from edge_recorder.config.loader import EX_CONFIG


def test_run_sets_the_grpc_experiments_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRPC_EXPERIMENTS", "x")  # so teardown restores the original state
    monkeypatch.delenv("GRPC_EXPERIMENTS")
    assert daemon.main(tmp_path / "absent.toml") == EX_CONFIG  # stops before any I/O
    assert daemon.os.environ["GRPC_EXPERIMENTS"] == "-event_engine_client"


def test_an_operator_setting_wins_even_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRPC_EXPERIMENTS", "")
    assert daemon.main(tmp_path / "absent.toml") == EX_CONFIG
    assert daemon.os.environ["GRPC_EXPERIMENTS"] == ""
