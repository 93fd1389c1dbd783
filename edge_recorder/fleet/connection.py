"""Everything needed to open an MQTT session, checked once at start-up.

Secrets and certificates are read when the reporter is built, so a wrong path is a clear error
at daemon start rather than a silent failure in a network thread hours later.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_recorder.config.model import Config
from edge_recorder.support.credentials import SecretUnavailable, read_secret
from edge_recorder.support.logs import get_logger
from edge_recorder.support.threads import name_native_thread

log = get_logger(__name__)
MQTT_V5 = mqtt.MQTTv5
MQTT_V311 = mqtt.MQTTv311
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason; paho maps a 3.1.1 "refused: protocol" here too


class FleetSetupError(Exception):
    """The MQTT settings cannot work (unreadable CA, key or password file)."""


@dataclass(frozen=True)
class ConnectionSettings:
    host: str
    port: int
    keepalive_s: int
    client_id: str
    prefer_v5: bool
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:  # never show the password
        return f"ConnectionSettings(host={self.host!r}, port={self.port}, tls={bool(self.tls)})"


def tls_context(
    ca_file: Path | None, client_cert_file: Path | None = None, client_key_file: Path | None = None
) -> ssl.SSLContext:
    """Verifying client context: the CA file (or the system store), optional client cert.

    Plain parameters, so the device's [mqtt] section and the dashboard's share it."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if client_cert_file:
            context.load_cert_chain(
                str(client_cert_file), str(client_key_file) if client_key_file else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise FleetSetupError(f"mqtt TLS files unusable: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def broker_password(username: str | None, password_file: Path | None) -> str | None:
    """The broker password for `username` (the file or the systemd credential), or None.

    A configured file that cannot be read is a setup error; with no file and no credential the
    user name goes alone (brokers may authenticate by user name and client certificate)."""
    if not username:
        return None
    try:
        return read_secret(password_file, "mqtt-password")
    except SecretUnavailable as exc:
        if password_file is not None:
            raise FleetSetupError(f"mqtt password: {exc}") from None
        log.info("mqtt user name without password", reason=str(exc))
        return None


def settings_from_config(config: Config) -> ConnectionSettings:
    mqtt_cfg = config.mqtt
    if not mqtt_cfg.host:
        raise FleetSetupError("mqtt.host is not set: MQTT is off")
    password = broker_password(mqtt_cfg.username, mqtt_cfg.password_file)
    tls = None
    if mqtt_cfg.tls:
        tls = tls_context(mqtt_cfg.ca_file, mqtt_cfg.client_cert_file, mqtt_cfg.client_key_file)
    return ConnectionSettings(
        host=mqtt_cfg.host,
        port=mqtt_cfg.port,
        keepalive_s=mqtt_cfg.keepalive_s,
        client_id=f"edge-recorder-{config.device.id}",
        prefer_v5=mqtt_cfg.protocol == "5",
        username=mqtt_cfg.username,
        password=password,
        tls=tls,
    )


def build_client(
    settings: ConnectionSettings,
    protocol: MQTTProtocolVersion,
    *,
    reconnect_min_s: int | None = None,
    reconnect_max_s: int = 60,
    max_inflight: int = 20,
) -> mqtt.Client:
    """A paho client for one protocol version; callbacks are attached by the caller.

    The first reconnect delay is 1-3 s at random (unless given) so a fleet that lost its
    broker does not return in one synchronised wave; paho doubles it up to the maximum.
    """
    client = QuietClient(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=protocol,
        clean_session=True if protocol != MQTT_V5 else None,
    )
    client.loop_timeout_s = loop_timeout_s(settings.keepalive_s)
    first = reconnect_min_s if reconnect_min_s is not None else random.randint(1, 3)  # noqa: S311
    client.reconnect_delay_set(min_delay=first, max_delay=max(first, reconnect_max_s))
    client.max_inflight_messages_set(max_inflight)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        client.tls_set_context(settings.tls)
    client.on_socket_open = no_delay
    return client


def loop_timeout_s(keepalive_s: int) -> float:
    """How long paho's network thread may sleep with no traffic: a quarter of the keepalive.

    paho's own loop wakes every second to check whether a PINGREQ is due (issue #24: a cold
    wake-up a second on an idle device). Traffic wakes it at once either way (the socket, and
    paho's socket pair for every publish from another thread), so the only thing that waits
    longer is the keepalive check: a PINGREQ goes out at most a quarter keepalive late, well
    inside the broker's 1.5 x keepalive, and a dead broker is noticed as late at most."""
    return max(1.0, keepalive_s / 4)


class QuietClient(mqtt.Client):
    """paho's client whose `loop_start` thread sleeps `loop_timeout_s`, not 1 s, when idle.

    Overrides paho's private `_thread_main` (2.x; the lock pins the version, and
    tests/unit/fleet/test_connection.py fails if paho stops calling it). `disconnect()`
    wakes the thread through its socket pair, so stopping is not delayed."""

    loop_timeout_s: float = 1.0

    def _thread_main(self) -> None:
        name_native_thread("mqtt-network")
        try:
            self.loop_forever(timeout=self.loop_timeout_s, retry_first_connection=True)
        finally:
            self._thread = None


def no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Small MQTT packets must not wait for Nagle + delayed ACK (~40 ms per hop measured)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_async(
    client: mqtt.Client, settings: ConnectionSettings, protocol: MQTTProtocolVersion
) -> None:
    """Queue the first connection; paho's own thread connects and reconnects."""
    if protocol == MQTT_V5:
        client.connect_async(settings.host, settings.port, settings.keepalive_s, clean_start=True)
    else:
        client.connect_async(settings.host, settings.port, settings.keepalive_s)


def subscriptions(
    command_filter: str, others: list[str], protocol: MQTTProtocolVersion
) -> list[tuple[str, Any]]:
    """QoS 1 everywhere. On MQTT 5 commands come without our own answers (no-local) and with
    the publisher's retain flag (retain-as-published: commands.py says why). The other topics
    (our availability and status included) keep the defaults: we need our own echoes there."""
    if protocol != MQTT_V5:
        return [(command_filter, 1), *((topic, 1) for topic in others)]
    commands = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
    return [(command_filter, commands), *((topic, SubscribeOptions(qos=1)) for topic in others)]


def protocol_name(protocol: MQTTProtocolVersion) -> str:
    return "5" if protocol == MQTT_V5 else "3.1.1"
