"""The bounded outbox (drop-oldest, never blocking) and the persisted birth sequence."""

from __future__ import annotations

from pathlib import Path

from edge_recorder.fleet.birth import BirthCounter
from edge_recorder.fleet.outbox import Message, Outbox


def event(n: int) -> Message:
    return Message("t/events", str(n).encode(), False, "event")


def test_outbox_drops_the_oldest_event_and_counts() -> None:
    box = Outbox(event_max=3)
    for n in range(5):
        box.put(event(n))
    assert box.events_queued == 3 and box.events_dropped == 2
    box.put(Message("t/cmd/response", b"r", False, "response"))
    taken = box.take(10)
    assert [m.payload for m in taken] == [b"r", b"2", b"3", b"4"]  # control lane first
    assert len(box) == 0


def test_push_back_keeps_order_and_the_bound() -> None:
    box = Outbox(event_max=3)
    for n in range(3):
        box.put(event(n))
    taken = box.take(2)
    box.put(event(3))
    box.put(event(4))  # 2, 3, 4 queued
    box.push_back(taken)  # 0, 1 return to the front; over the bound, the oldest go
    assert [m.payload for m in box.take(10)] == [b"2", b"3", b"4"]
    assert box.events_dropped == 2


def test_birth_counter_persists(tmp_path: Path) -> None:
    path = tmp_path / "state" / "birth"
    first = BirthCounter(path)
    assert (first.next(), first.next()) == (1, 2)
    assert path.read_text() == "2\n"
    assert BirthCounter(path).next() == 3


def test_birth_counter_survives_garbage_and_unwritable_files(tmp_path: Path) -> None:
    path = tmp_path / "birth"
    path.write_text("not a number")
    assert BirthCounter(path).next() == 1
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    counter = BirthCounter(blocked / "birth")  # parent is a file: cannot persist
    assert (counter.next(), counter.next()) == (1, 2)
    assert BirthCounter(None).next() == 1
