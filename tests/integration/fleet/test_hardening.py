"""Hostile or careless MQTT input against a real broker (issue #19, items 6 and 12): a ping
flood, a retained command published while the device listens, a replayed `start`, bodies
that break naive JSON parsing, and forged retained presence on the device's own topics."""

from __future__ import annotations

import json

from edge_recorder.fleet.watch import FleetView, alerts, presence
from tests.integration.fleet.conftest import DEVICE, PREFIX
from tests.support.helpers import async_poll_until

BASE = f"{PREFIX}/{DEVICE}"
RESPONSE = f"{BASE}/cmd/response"
AVAIL = f"{BASE}/availability"
STATUS = f"{BASE}/status"


def answer_to(request_id: str | None):
    def match(message) -> bool:
        return message.topic == RESPONSE and message.json()["request_id"] == request_id

    return match


def answers(watcher, prefix: str) -> list[dict]:
    return [
        m.json()
        for m in list(watcher.messages)
        if m.topic == RESPONSE and str(m.json()["request_id"]).startswith(prefix)
    ]


async def online(watcher) -> None:
    await watcher.await_for(lambda m: m.topic == AVAIL and m.json()["state"] == "online")


async def test_ping_flood_is_limited_counted_and_does_not_starve_a_start(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    config = make_config(
        mosquitto_broker, status_interval_s=0.3, command_rate_per_s=2.0, command_burst=20
    )
    reporter, daemon = await start_reporter(config)
    await online(watcher)

    def send(name: str, request_id: str):
        body = json.dumps({"request_id": request_id})
        return watcher.client.publish(f"{BASE}/cmd/{name}", body, qos=1)

    # the start goes in the middle of the flood (before, it was refused "busy" there)
    infos = [send("ping", f"f{n}") for n in range(250)]
    infos.append(send("start", "real-start"))
    infos += [send("ping", f"f{n}") for n in range(250, 500)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    started = (await watcher.await_for(answer_to("real-start"))).json()
    assert started["ok"] is True and started["state"] == "recording", started
    assert [r.name for r in daemon.requests].count("start") == 1

    def pings_run() -> int:
        return sum(1 for r in daemon.requests if r.name == "ping")

    def judged() -> int:  # run, refused busy (no free slot: answered) or rate limited
        stats = reporter.stats()
        return pings_run() + stats.commands_rejected + stats.commands_limited

    await async_poll_until(lambda: judged() == 500, 10, "every ping judged")
    executed, stats = pings_run(), reporter.stats()
    busy = stats.commands_rejected
    assert stats.commands_limited > 0
    # every ping is accounted for: answered (pong, busy or rate_limited) or counted unanswered
    await async_poll_until(
        lambda: len(answers(watcher, "f")) + reporter.stats().replies_dropped == 500,
        10,
        "every ping answered or counted",
    )
    got = answers(watcher, "f")
    assert sum(1 for a in got if a["ok"]) == executed
    codes = [a["error"]["code"] for a in got if not a["ok"]]
    assert codes.count("busy") == busy
    assert codes.count("rate_limited") + reporter.stats().replies_dropped == stats.commands_limited
    assert len(codes) == busy + codes.count("rate_limited")

    # ...and the dashboard sees it: the status carries the counters
    final = reporter.stats()
    status = await watcher.await_for(
        lambda m: (
            m.topic == STATUS
            and m.json()["mqtt"]["commands_limited"] == final.commands_limited
            and m.json()["mqtt"]["replies_dropped"] == final.replies_dropped
        )
    )
    assert status.json()["mqtt"]["replies_dropped"] > 0
    view = FleetView(PREFIX)
    view.apply(status.topic, status.payload)
    assert {"commands_limited", "replies_dropped"} <= set(alerts(view.devices[DEVICE]))


async def test_retained_start_published_while_listening_is_not_executed(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, daemon = await start_reporter(make_config(mosquitto_broker))
    await online(watcher)
    # the device is subscribed: the broker forwards this with retain=0 unless the device
    # subscribed with "retain as published"
    watcher.publish(f"{BASE}/cmd/start", json.dumps({"request_id": "sticky"}), retain=True)
    watcher.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "after"}))
    assert (await watcher.await_for(answer_to("after"))).json()["ok"]
    assert [r.name for r in daemon.requests] == ["ping"]
    assert reporter.stats().commands_ignored == 1
    assert not answers(watcher, "sticky")


async def test_replayed_start_within_the_ttl_never_runs_again(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    config = make_config(mosquitto_broker, command_rate_per_s=1000.0, command_burst=1000)
    _, daemon = await start_reporter(config)
    await online(watcher)
    watcher.publish(f"{BASE}/cmd/start", json.dumps({"request_id": "once"}))
    first = (await watcher.await_for(answer_to("once"))).json()
    for n in range(100):  # more state changes than any fixed-size memory of 64
        watcher.publish(f"{BASE}/cmd/stop", json.dumps({"request_id": f"stop-{n}"}))
    await watcher.await_for(answer_to("stop-99"))
    mark = watcher.count()
    watcher.publish(f"{BASE}/cmd/start", json.dumps({"request_id": "once"}))
    replay = (await watcher.await_for(answer_to("once"), after=mark)).json()
    assert replay == first
    assert [r.name for r in daemon.requests].count("start") == 1


HOSTILE = [
    # (name, body, request_id the answer can still carry)
    ("start", b'{"request_id":"big","context":{"data":{"n":' + b"7" * 5000 + b"}}}", "big"),
    ("ping", b'{"request_id":"neg","n":-' + b"9" * 5000 + b"}", "neg"),
    ("start", b'{"request_id":"nan","context":{"data":{"v":NaN}}}', "nan"),
    ("start", b'{"request_id":"inf","context":{"data":{"v":1e999}}}', "inf"),
    ("ping", b"[" * 6000 + b"]" * 6000, None),
    ("start", b'{"request_id":"deep","context":{"data":' + b"[" * 40 + b"]" * 40 + b"}}", "deep"),
]


async def test_hostile_bodies_get_an_answer_never_an_exception(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, daemon = await start_reporter(make_config(mosquitto_broker))
    await online(watcher)
    for name, body, request_id in HOSTILE:
        mark = watcher.count()
        watcher.publish(f"{BASE}/cmd/{name}", body)
        answer = (await watcher.await_for(answer_to(request_id), after=mark)).json()
        assert answer["ok"] is False, (name, body[:60])
        assert answer["error"]["code"] == "invalid_json", answer
        assert answer["command"] == name
    assert daemon.requests == []
    assert reporter.stats().commands_rejected == len(HOSTILE)


async def test_forged_retained_offline_with_a_higher_birth_seq_is_corrected(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, _ = await start_reporter(make_config(mosquitto_broker))
    await online(watcher)
    seq = reporter.stats().birth_seq
    forged = {"v": 1, "state": "offline", "birth_seq": 10**9, "reason": "lost", "at": None}
    forged["at"] = "2026-01-01T00:00:00.000Z"
    mark = watcher.count()
    watcher.publish(AVAIL, json.dumps(forged), retain=True)
    back = await watcher.await_for(
        lambda m: m.topic == AVAIL and m.json()["state"] == "online", after=mark
    )
    assert back.json()["birth_seq"] == seq
    fresh = collect(mosquitto_broker)  # what a dashboard starting now reads
    retained = fresh.wait_for(lambda m: m.topic == AVAIL)
    assert retained.json()["state"] == "online" and retained.json()["birth_seq"] == seq
    # a dashboard that saw the forgery and then the correction shows the device online
    view = FleetView(PREFIX)
    for message in list(watcher.messages):
        view.apply(message.topic, message.payload)
    assert presence(view.devices[DEVICE], view.devices[DEVICE].last_seen or 0.0) == "online"


async def test_forged_retained_status_is_replaced_at_once(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    reporter, daemon = await start_reporter(make_config(mosquitto_broker, status_interval_s=600))
    await online(watcher)
    daemon.fail_mic()  # a change: after its status nothing else is due for 600 s
    reporter.status_changed()
    mine = await watcher.await_for(lambda m: m.topic == STATUS and m.json()["alarms"])
    forged = mine.json() | {"state": "recording", "alarms": [], "birth_seq": 10**9}
    mark = watcher.count()
    watcher.publish(STATUS, json.dumps(forged), retain=True)
    back = await watcher.await_for(
        lambda m: m.topic == STATUS and m.json()["alarms"] == ["mic_missing"], after=mark
    )
    assert back.json()["birth_seq"] == reporter.stats().birth_seq
    fresh = collect(mosquitto_broker)
    assert fresh.wait_for(lambda m: m.topic == STATUS).json()["alarms"] == ["mic_missing"]
