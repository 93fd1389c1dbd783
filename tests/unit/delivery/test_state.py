"""The engine's own persisted facts: which recordings went live, which REST chunk size."""

from __future__ import annotations

from pathlib import Path

from edge_recorder.delivery.state import STATE_NAME, DeliveryState


def test_facts_survive_a_restart(tmp_path: Path) -> None:
    state = DeliveryState(tmp_path)
    state.mark_live("a")
    assert state.rest_chunk_bytes("b", 65536) == 65536
    again = DeliveryState(tmp_path)
    assert again.is_live("a") and not again.is_live("b")
    # the size chosen at the first attempt sticks, even if the config changed since
    assert again.rest_chunk_bytes("b", 4096) == 65536


def test_clear_live_and_prune(tmp_path: Path) -> None:
    state = DeliveryState(tmp_path)
    state.mark_live("a")
    state.mark_live("b")
    state.rest_chunk_bytes("c", 10)
    state.clear_live("a")
    state.prune(["b"])
    again = DeliveryState(tmp_path)
    assert not again.is_live("a") and again.is_live("b")
    assert again.rest_chunk_bytes("c", 99) == 99  # pruned: starts afresh


def test_unreadable_file_starts_empty_without_crashing(tmp_path: Path) -> None:
    (tmp_path / STATE_NAME).write_text("{not json")
    state = DeliveryState(tmp_path)
    assert not state.is_live("a")
    state.mark_live("a")
    assert DeliveryState(tmp_path).is_live("a")


def test_forget_drops_entries_without_writing_and_the_next_save_persists_it(
    tmp_path: Path,
) -> None:
    """Called once per encounter handed to processing: no file write of its own (an entry
    left on disk names a recording that is gone, which nothing acts on)."""
    state = DeliveryState(tmp_path)
    state.mark_live("a")
    state.rest_chunk_bytes("b", 10)
    before = (tmp_path / STATE_NAME).stat()
    state.forget(["a", "b", "never-known"])
    after = (tmp_path / STATE_NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not state.is_live("a")
    state.mark_live("c")  # any later save writes the smaller state
    again = DeliveryState(tmp_path)
    assert not again.is_live("a") and again.is_live("c")
    assert again.rest_chunk_bytes("b", 99) == 99
