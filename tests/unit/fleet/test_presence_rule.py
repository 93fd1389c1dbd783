"""The birth-order presence rule that `fleet watch` and the dashboard share, case by case."""

from __future__ import annotations

from edge_recorder.fleet.presence_rule import PresenceRule


def test_nothing_heard_is_unknown() -> None:
    rule = PresenceRule()
    assert rule.state() == "unknown"
    assert rule.birth_seq is None


def test_a_late_will_of_an_older_session_is_ignored_with_its_reason() -> None:
    rule = PresenceRule()
    assert rule.availability("online", 5, None)
    assert not rule.availability("offline", 4, "lost")
    assert (rule.state(), rule.offline_reason) == ("online", None)
    assert rule.availability("offline", 5, "shutdown")  # this session's own will
    assert (rule.state(), rule.offline_reason) == ("offline", "shutdown")
    assert rule.birth_seq == 5


def test_an_online_after_an_offline_wins_whatever_the_numbers() -> None:
    rule = PresenceRule()
    rule.availability("online", 3, None)
    assert rule.availability("offline", 99, "lost")  # forged, claiming a newer session
    assert rule.state() == "offline"
    assert rule.availability("online", 3, None)  # the device overrules it
    assert rule.state() == "online"
    reimaged = PresenceRule()
    reimaged.availability("offline", 40, "lost")
    reimaged.availability("online", 1, None)  # birth counter reset
    assert reimaged.state() == "online"


def test_a_status_proves_life_unless_a_newer_session_died() -> None:
    rule = PresenceRule()
    rule.availability("offline", 4, "lost")
    rule.status(4)  # the dead session's last status, delivered late
    assert rule.state() == "offline"
    rule.status(5)  # a newer session is alive
    assert rule.state() == "online"
    assert rule.birth_seq == 5
    fresh = PresenceRule()
    fresh.status(None)  # a status without a number still shows the device exists
    assert fresh.state() == "online"


def test_bare_text_decides_until_a_json_availability_replaces_it() -> None:
    rule = PresenceRule()
    rule.availability("online", 2, None)
    rule.plain = "offline"
    rule.status(3)
    assert rule.state() == "offline"
    rule.availability("online", 3, None)
    assert rule.state() == "online"


def test_numbers_that_are_not_integers_are_not_session_numbers() -> None:
    rule = PresenceRule()
    rule.availability("online", True, None)
    rule.availability("online", "7", None)
    rule.status(2.5)
    assert rule.birth_seq is None
    assert rule.availability("offline", None, 3)  # no number: believed, odd reason dropped
    assert (rule.state(), rule.offline_reason) == ("offline", None)
