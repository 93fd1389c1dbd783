"""`edge-recorder check --probe`: can this device reach its MQTT broker with its settings?

Connects with the daemon's own TLS and credentials but a separate client id (reusing the
daemon's id would kick the running daemon off the broker), waits for CONNACK with a
deadline, and disconnects cleanly. Registered on import; `commands/check.py` imports it.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from typing import Any

from paho.mqtt.enums import MQTTProtocolVersion

from edge_recorder.config.model import Config
from edge_recorder.fleet.connection import (
    MQTT_V5,
    MQTT_V311,
    UNSUPPORTED_PROTOCOL,
    ConnectionSettings,
    FleetSetupError,
    build_client,
    protocol_name,
    settings_from_config,
)
from edge_recorder.support.checks import CheckResult

TIMEOUT_S = 5.0


def probe_mqtt(config: Config, timeout_s: float = TIMEOUT_S) -> list[CheckResult]:
    if not config.mqtt.host:
        return [CheckResult("mqtt", "info", "off (mqtt.host not set)")]
    try:
        settings = settings_from_config(config)
    except FleetSetupError as exc:
        return [CheckResult("mqtt", "fail", str(exc))]
    where = f"{settings.host}:{settings.port}"
    protocol = MQTT_V5 if settings.prefer_v5 else MQTT_V311
    checker = replace(settings, client_id=settings.client_id + "-check")
    for attempt in (protocol, MQTT_V311):
        outcome = _try(checker, attempt, timeout_s)
        if outcome == "ok":
            detail = f"{where}: connected (MQTT {protocol_name(attempt)}"
            detail += ", TLS)" if settings.tls else ")"
            return [CheckResult("mqtt", "ok", detail)]
        if outcome != "unsupported protocol" or attempt == MQTT_V311:
            return [CheckResult("mqtt", "fail", f"{where}: {outcome}")]
    return [CheckResult("mqtt", "fail", f"{where}: no answer")]


def _try(settings: ConnectionSettings, protocol: MQTTProtocolVersion, timeout_s: float) -> str:
    client = build_client(settings, protocol, reconnect_min_s=1)
    done = threading.Event()
    result: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            result.append("ok")
        elif reason.value == UNSUPPORTED_PROTOCOL:
            result.append("unsupported protocol")
        else:
            result.append(f"refused: {reason}")
        done.set()

    def on_connect_fail(_c: Any, _u: Any) -> None:
        exc = sys.exc_info()[1]
        result.append(f"{type(exc).__name__}: {exc}" if exc else "connection failed")
        done.set()

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    try:
        client.connect(settings.host, settings.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return f"no CONNACK within {timeout_s:g} s"
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()
