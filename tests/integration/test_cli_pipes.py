"""`edge-recorder … | head`: when the reader of stdout has gone, every command stops quietly
(exit 141, as a C tool killed by SIGPIPE reports in a shell) instead of a BrokenPipeError
traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `edge-recorder ARGS` with stdout a pipe whose reader has already read what it
    wanted and closed: the read end is closed before the child starts, so its first write
    fails with EPIPE for certain (no race with the pipe's buffer)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "edge_recorder", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ("devices", "--json"),  # json.dump's writes
        ("devices",),  # print()'s writes
    ],
)
def test_a_closed_reader_ends_the_command_quietly(args: tuple[str, ...]) -> None:
    result = run_into_closed_pipe(*args)
    assert "Traceback" not in result.stderr, result.stderr
    assert "BrokenPipeError" not in result.stderr, result.stderr
    assert result.stderr == ""
    assert result.returncode == 141


def test_head_reads_one_line_and_the_command_still_exits_cleanly() -> None:
    """The shell pipeline itself: `edge-recorder devices --json | head -n 1`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RECORDER")}
    python = sys.executable
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; '{python}' -m edge_recorder devices --json | head -n1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.stdout == "{\n"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode in (0, 141)  # 0 when head read after the whole reply was written
