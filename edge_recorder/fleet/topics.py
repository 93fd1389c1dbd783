"""The topic tree: `<prefix>/<device_id>/{availability,status,events,cmd/<name>,cmd/response}`.

Names live in one place so the device, `fleet watch` and Home Assistant discovery agree.
"""

from __future__ import annotations

from dataclasses import dataclass

HA_PREFIX = "homeassistant"
HA_STATUS_TOPIC = f"{HA_PREFIX}/status"
RESPONSE_LEAF = "response"


@dataclass(frozen=True)
class DeviceTopics:
    """Every topic one device publishes to or listens on."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    @property
    def response(self) -> str:
        return f"{self.base}/cmd/{RESPONSE_LEAF}"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """`<base>/cmd/<name>` → name; None for any other topic."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None


def fleet_filters(prefix: str) -> list[str]:
    """Subscriptions that see every device under a prefix (for dashboards)."""
    return [f"{prefix}/+/availability", f"{prefix}/+/status", f"{prefix}/+/events"]


def split_device_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """`<prefix>/<device>/<leaf>` → (device, leaf); None when the topic is not a device topic."""
    head = f"{prefix}/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 2 or not parts[0]:
        return None
    return parts[0], parts[1]
