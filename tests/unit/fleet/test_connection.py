"""Connection settings are checked when the reporter is built, not hours later."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.fleet.connection import (
    MQTT_V5,
    FleetSetupError,
    build_client,
    loop_timeout_s,
    settings_from_config,
)
from edge_recorder.fleet.reporter import FleetReporter
from tests.integration.fleet.fakes import FakeDaemon
from tests.support.mosquitto import make_tls_files


def config(**mqtt: object) -> Config:
    return Config.model_validate(
        {"device": {"id": "exam-1"}, "mqtt": {"host": "127.0.0.1", **mqtt}}
    )


def test_mqtt_is_off_without_a_host() -> None:
    assert not FleetReporter.enabled(Config.model_validate({}))
    daemon = FakeDaemon()
    with pytest.raises(FleetSetupError, match=r"mqtt\.host is not set"):
        FleetReporter(Config.model_validate({}), daemon.status, daemon)


def test_missing_ca_file_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(FleetSetupError, match="TLS files unusable"):
        settings_from_config(config(tls=True, ca_file=str(tmp_path / "nope.pem")))


def test_client_certificate_without_its_key_is_a_setup_error(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    with pytest.raises(FleetSetupError, match="TLS files unusable"):
        settings_from_config(
            config(tls=True, ca_file=str(tls.ca_cert), client_cert_file=str(tls.client_cert))
        )
    good = settings_from_config(
        config(
            tls=True,
            ca_file=str(tls.ca_cert),
            client_cert_file=str(tls.client_cert),
            client_key_file=str(tls.client_key),
        )
    )
    assert good.tls is not None


def test_password_comes_from_the_file_or_credential(tmp_path: Path) -> None:
    with pytest.raises(FleetSetupError, match="mqtt password"):
        settings_from_config(config(username="u", password_file=str(tmp_path / "missing")))
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = settings_from_config(config(username="u", password_file=str(secret)))
    assert settings.password == "s3cret"
    assert "s3cret" not in repr(settings)
    no_password = settings_from_config(config(username="u"))  # no file, no credential
    assert no_password.password is None and no_password.client_id == "edge-recorder-exam-1"


def test_the_network_thread_sleeps_a_quarter_keepalive_not_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """paho's loop thread wakes only for traffic or the keepalive check (issue #24)."""
    settings = settings_from_config(config(keepalive_s=60))
    client = build_client(settings, MQTT_V5)
    timeouts: list[float] = []

    def loop_forever(timeout: float = 1.0, retry_first_connection: bool = False) -> None:
        timeouts.append(timeout)

    monkeypatch.setattr(client, "loop_forever", loop_forever)
    client.loop_start()
    client.loop_stop()  # joins the thread
    assert timeouts == [15.0]
    assert loop_timeout_s(5) == 1.25 and loop_timeout_s(2) == 1.0
