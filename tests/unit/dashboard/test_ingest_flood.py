"""A flood's messages are read in gulps: paho's thread pauses only when the flood is all there
is to read (edge_recorder/dashboard/ingest.py's module doc), never while a backlog waits."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from edge_recorder.dashboard.config import LimitsSettings, MqttSettings
from edge_recorder.dashboard.fleetstate import FleetState
from edge_recorder.dashboard.ingest import FLOOD_PAUSE_S, Ingest


class _Client:
    """The one thing Ingest asks of paho's client here: its socket (None when disconnected)."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def socket(self) -> socket.socket | None:
        return self.sock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, broker = socket.socketpair()
    yield ours, broker
    ours.close()
    broker.close()


def _ingest(sock: socket.socket | None, pauses: list[float]) -> Ingest:
    limits = LimitsSettings(device_rate_per_s=0.001, device_burst=1)
    ingest = Ingest(
        MqttSettings(), limits, FleetState("edge-recorder"),
        on_valid=lambda *_: None, on_changed=lambda _: None, pause=pauses.append,
    )  # fmt: skip
    ingest._client = _Client(sock)  # type: ignore[assignment]
    return ingest


def _message(device: str) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=f"edge-recorder/{device}/status".encode())
    message.payload = b"{}"
    return message


def test_a_flood_with_nothing_else_to_read_pauses_the_reader(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    pauses: list[float] = []
    ingest = _ingest(pair[0], pauses)
    ingest._on_message(None, None, _message("noisy"))  # the burst's one message: taken
    assert pauses == []
    ingest._on_message(None, None, _message("noisy"))  # refused, and the socket is empty
    assert pauses == [FLOOD_PAUSE_S]
    assert ingest._floods == {"noisy": 1}


def test_a_backlog_is_read_without_pausing(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, broker = pair
    pauses: list[float] = []
    ingest = _ingest(ours, pauses)
    ingest._on_message(None, None, _message("noisy"))
    broker.sendall(b"\x30\x02ab")  # more bytes from the broker are waiting
    for _ in range(5):
        ingest._on_message(None, None, _message("noisy"))
    assert pauses == []
    ours.recv(16)  # read: nothing waits now
    ingest._on_message(None, None, _message("noisy"))
    assert pauses == [FLOOD_PAUSE_S]
    assert ingest._floods == {"noisy": 6}


def test_messages_within_their_rate_never_pause(pair: tuple[socket.socket, socket.socket]) -> None:
    pauses: list[float] = []
    ingest = _ingest(pair[0], pauses)
    for device in ("a", "b", "c"):
        ingest._on_message(None, None, _message(device))
    assert pauses == [] and len(ingest._queue) == 3


def test_without_a_socket_there_is_no_pause() -> None:
    pauses: list[float] = []
    ingest = _ingest(None, pauses)
    ingest._on_message(None, None, _message("noisy"))
    ingest._on_message(None, None, _message("noisy"))
    assert pauses == [] and ingest._floods == {"noisy": 1}
