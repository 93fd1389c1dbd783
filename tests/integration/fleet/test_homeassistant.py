"""Home Assistant discovery: retained configs that point at our status and availability, and a
re-announcement when Home Assistant comes back online."""

from __future__ import annotations

import json

from edge_recorder.fleet.homeassistant import ENTITIES
from tests.integration.fleet.conftest import DEVICE, PREFIX

NODE = f"edge_recorder_{DEVICE}"


def is_config(message) -> bool:
    return message.topic.startswith("homeassistant/") and message.topic.endswith("/config")


async def test_discovery_and_reannounce(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    config = make_config(mosquitto_broker, homeassistant_discovery=True)
    _, daemon = await start_reporter(config)
    await watcher.await_for(lambda m: m.topic == f"{PREFIX}/{DEVICE}/status")
    late = collect(mosquitto_broker, ["homeassistant/#"])
    await late.await_for(lambda m: m.topic.endswith("/identify/config"))
    configs = {m.topic: m.json() for m in late.messages if is_config(m)}
    assert all(m.retain for m in late.messages if is_config(m))
    assert set(configs) == {f"homeassistant/{e.component}/{NODE}/{e.key}/config" for e in ENTITIES}
    state = configs[f"homeassistant/sensor/{NODE}/state/config"]
    assert state["state_topic"] == f"{PREFIX}/{DEVICE}/status"
    assert state["availability"][0]["topic"] == f"{PREFIX}/{DEVICE}/availability"
    assert state["device"]["identifiers"] == [NODE]
    assert state["device"]["suggested_area"] == "Room 1"
    assert state["device"]["hw_version"] == "Raspberry Pi 4 Model B Rev 1.5"
    button = configs[f"homeassistant/button/{NODE}/identify/config"]
    assert button["command_topic"] == f"{PREFIX}/{DEVICE}/cmd/identify"

    # Home Assistant restarts and says so: the device announces itself again
    mark = late.count()
    late.publish("homeassistant/status", "online")
    await late.await_for(lambda m: m.topic.endswith("/identify/config"), after=mark)
    again = [m for m in late.messages[mark:] if is_config(m)]
    assert len(again) == len(ENTITIES)

    # pressing the button in Home Assistant sends a command the device accepts
    for press in range(2):  # every press identifies, though the body is the same each time
        mark = watcher.count()
        late.publish(button["command_topic"], button["payload_press"])
        answer = await watcher.await_for(lambda m: m.topic.endswith("/cmd/response"), after=mark)
        assert answer.json()["ok"] and answer.json()["command"] == "identify"
        assert json.loads(button["payload_press"])["request_id"] == answer.json()["request_id"]
        assert [r.name for r in daemon.requests] == ["identify"] * (press + 1)


async def test_no_discovery_unless_enabled(
    mosquitto_broker, make_config, collect, start_reporter
) -> None:
    watcher = collect(mosquitto_broker)
    await start_reporter(make_config(mosquitto_broker))
    await watcher.await_for(lambda m: m.topic == f"{PREFIX}/{DEVICE}/status")
    watcher.publish("homeassistant/status", "online")
    watcher.publish(f"{PREFIX}/{DEVICE}/cmd/ping", json.dumps({"request_id": "p"}))
    await watcher.await_for(lambda m: m.topic.endswith("/cmd/response"))
    assert not [m for m in watcher.messages if is_config(m)]
