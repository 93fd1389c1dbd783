"""The current delivery error and the last one seen are two things: an operator (status, MQTT,
Home Assistant) must see a problem go away once delivery works again, and still be able to
read what the last problem was and when."""

from __future__ import annotations

from pathlib import Path

from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import Spool
from edge_recorder.uplinks.fakes import FakeService
from tests.support.helpers import async_poll_until
from tests.unit.delivery.test_engine import config, reclaimed, record, running, spool

__all__ = ["config", "spool"]  # the fixtures of test_engine, shared


async def test_the_current_error_clears_on_recovery_and_the_last_one_is_kept(
    config: Config, spool: Spool
) -> None:
    service = FakeService(offline=True)
    record(spool, "enc-1")
    spool.end_encounter("enc-1")
    async with running(config, spool, service) as engine:
        engine.wake()
        await async_poll_until(lambda: engine.snapshot().error is not None, what="an error")
        offline = engine.snapshot()
        assert offline.error is not None and offline.error.code == "delivery_unavailable"
        assert offline.last_error == offline.error
        seen_at = offline.error.at

        service.offline = False
        engine.wake()
        await async_poll_until(lambda: reclaimed(spool, "enc-1"), what="enc-1 delivered")
        back = engine.snapshot()
    assert back.online
    assert back.error is None  # nothing is wrong now
    assert back.last_error is not None  # ...but what was wrong, and when, is still there
    assert back.last_error.code == "delivery_unavailable"
    assert back.last_error.at >= seen_at


def test_an_incomplete_config_is_a_current_error_from_the_start(tmp_path: Path) -> None:
    """No endpoint: the engine says so before it ever runs (status is asked at start-up)."""
    base = tmp_path
    cfg = Config.model_validate(
        {"spool": {"dir": str(base / "spool"), "key_file": str(base / "k")}}
    )
    opened = Spool.open(cfg.spool, environ={})
    try:
        snap = DeliveryEngine(cfg, opened).snapshot()
    finally:
        opened.close()
    assert snap.disabled
    assert snap.error is not None and snap.error.code == "delivery_config"


def test_mqtt_and_home_assistant_follow_the_current_error() -> None:
    """The status document carries both, valid against its schema; the Home Assistant problem
    sensor reads `error` (current), so it turns OFF once delivery works again."""
    from datetime import UTC, datetime

    from edge_recorder.fleet.homeassistant import ENTITIES
    from edge_recorder.fleet.payloads import StatusMeta, status_payload
    from edge_recorder.fleet.sysinfo import SystemInfo
    from edge_recorder.status import DeviceStatus, ErrorInfo
    from tests.integration.fleet.checks import validator

    seen = ErrorInfo(code="delivery_unavailable", message="reset by peer", at=datetime.now(UTC))
    meta = StatusMeta("exam-1", "Room 1", 1, 30.0, "5")
    recovered = status_payload(DeviceStatus(last_error=seen), SystemInfo(), meta, datetime.now(UTC))
    validator("status").validate(recovered)
    assert recovered["error"] is None
    assert recovered["last_error"]["code"] == "delivery_unavailable"
    failing = status_payload(
        DeviceStatus(error=seen, last_error=seen), SystemInfo(), meta, datetime.now(UTC)
    )
    validator("status").validate(failing)
    assert failing["error"]["code"] == "delivery_unavailable"
    (problem,) = [e for e in ENTITIES if e.key == "delivery_problem"]
    assert problem.template is not None and "value_json.error" in problem.template
    assert "last_error" not in problem.template
