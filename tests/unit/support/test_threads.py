"""The daemon's threads carry their names into the kernel (top -H, /proc, bench_realtime)."""

from __future__ import annotations

import threading
from pathlib import Path

from edge_recorder.support.threads import name_native_thread


def _comm_of_a_thread_named(name: str) -> str:
    seen: list[str] = []

    def run() -> None:
        name_native_thread(name)
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0].strip()


def test_a_thread_is_named_in_the_kernel() -> None:
    assert _comm_of_a_thread_named("alsa-capture") == "alsa-capture"


def test_a_long_name_is_cut_to_what_the_kernel_keeps() -> None:
    assert _comm_of_a_thread_named("a-very-long-thread-name") == "a-very-long-thr"


def test_naming_a_thread_leaves_the_process_name_alone() -> None:
    before = Path("/proc/self/comm").read_text()
    _comm_of_a_thread_named("audio-worker")
    assert Path("/proc/self/comm").read_text() == before
