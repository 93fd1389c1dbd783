"""The capture thread's command queue: run in order with their answers, refused at exit."""

from __future__ import annotations

import pytest

from edge_recorder.capture.commands import Commands, Open, Work


def test_commands_run_in_order_and_answer_their_futures() -> None:
    commands = Commands()
    ran: list[Work] = []

    def execute(what: Work) -> object:
        ran.append(what)
        if what == "boom":
            raise ValueError("bad close")
        return "rec-1" if isinstance(what, Open) else None

    opened = commands.put(Open("enc-1", 1, "guid"))
    failed = commands.put("boom")
    barrier = commands.put(None)
    commands.run_pending(execute)
    commands.run_pending(execute)  # nothing left: runs nothing
    assert ran == [Open("enc-1", 1, "guid"), "boom", None]
    assert opened.result(0) == "rec-1" and barrier.result(0) is None
    with pytest.raises(ValueError, match="bad close"):
        failed.result(0)


def test_at_exit_opens_are_refused_and_closes_are_done() -> None:
    commands = Commands()
    opened = commands.put(Open("enc-1", 1, "guid"))
    closed = commands.put("shutdown")
    commands.drain()
    with pytest.raises(RuntimeError, match="stopped"):
        opened.result(0)
    assert closed.result(0) is None
