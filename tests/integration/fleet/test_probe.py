"""`check --probe`'s MQTT probe against a real broker, next to a running reporter."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_recorder.config.model import Config
from edge_recorder.fleet.probe import probe_mqtt
from tests.support.helpers import async_poll_until
from tests.support.mosquitto import free_port, make_tls_files


async def test_probe_connects_without_kicking_the_daemon(
    mosquitto_broker, make_config, start_reporter
) -> None:
    config = make_config(mosquitto_broker)
    reporter, _ = await start_reporter(config)
    await async_poll_until(lambda: reporter.stats().connected, 10, "connected")
    [result] = await asyncio.to_thread(probe_mqtt, config)
    assert (result.status, result.name) == ("ok", "mqtt")
    assert result.detail.endswith("connected (MQTT 5)")
    assert reporter.stats().connected and reporter.stats().connects == 1


def test_probe_failures(mosquitto_factory, make_config, tmp_path: Path) -> None:
    assert probe_mqtt(Config.model_validate({}))[0].status == "info"
    tls = make_tls_files(tmp_path / "tls")
    broker = mosquitto_factory(tls=tls)
    [untrusted] = probe_mqtt(make_config(broker, tls=True, ca_file=str(tls.other_ca_cert)))
    assert untrusted.status == "fail" and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
    [trusted] = probe_mqtt(make_config(broker, tls=True, ca_file=str(tls.ca_cert)))
    assert trusted.status == "ok" and trusted.detail.endswith("(MQTT 5, TLS)")
    [closed] = probe_mqtt(make_config(broker, port=free_port()))
    assert closed.status == "fail" and "ConnectionRefusedError" in closed.detail
    [missing] = probe_mqtt(make_config(broker, tls=True, ca_file=str(tmp_path / "none.pem")))
    assert missing.status == "fail" and "TLS files unusable" in missing.detail


def test_probe_reports_a_refusal(mosquitto_factory, make_config, tmp_path: Path) -> None:
    broker = mosquitto_factory(users={"device": "right"})
    password = tmp_path / "pw"
    password.write_text("wrong")
    [refused] = probe_mqtt(make_config(broker, username="device", password_file=str(password)))
    assert refused.status == "fail" and "refused: Not authorized" in refused.detail
    password.write_text("right")
    [ok] = probe_mqtt(make_config(broker, username="device", password_file=str(password)))
    assert ok.status == "ok"
