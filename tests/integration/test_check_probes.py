"""`edge-recorder check` and `check --probe` as a real process against real servers: every
probe is wired in, and each one fails on a wrong answer, not only on no answer (a web server
answering 404, a broker port that refuses), and says what the device would really do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import tomli_w
from aiohttp import web

from tests.conftest import RunCli
from tests.integration.daemon.conftest import daemon_config
from tests.support.emulator import EmulatorHandle
from tests.support.mosquitto import Mosquitto, free_port


@pytest.fixture
async def not_the_service() -> AsyncIterator[str]:
    """A plain web server that answers 404 to everything: reachable, but not the service."""

    async def nothing_here(_: web.Request) -> web.Response:
        return web.Response(status=404, text="404: Not Found")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", nothing_here)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def wav_at(path: Path, rate: int, seconds: float = 2.0) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(str(path), (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate,
                    subtype="PCM_16")  # fmt: skip
    return path


async def probe(
    run_cli: RunCli, tree: dict[str, Any], tmp_path: Path
) -> tuple[int, dict[str, Any]]:
    """`check --probe --json` on `tree`: the exit code and the rows by name (in a thread: the
    emulator and the test servers answer on this event loop)."""
    config = tmp_path / "device.toml"
    config.write_text(tomli_w.dumps(tree))
    args = ("check", "--probe", "--json", "--config", str(config))
    result = await asyncio.to_thread(run_cli, *args, timeout=90)
    assert result.stdout, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    return result.returncode, rows


def device(emu: EmulatorHandle | None, tmp_path: Path, **sections: dict[str, Any]) -> Any:
    sock = tmp_path / "s"
    sock.mkdir(exist_ok=True)
    return daemon_config(emu, tmp_path, sock, wav_at(tmp_path / "mic.wav", 16000), **sections)


def test_the_example_config_cannot_deliver_and_exits_78(run_cli: RunCli, repo_root: Path) -> None:
    result = run_cli("check", "--config", str(repo_root / "config.example.toml"))
    assert result.returncode == 78, result.stdout
    assert "aas cannot deliver" in result.stdout
    assert "auth.token_url" in result.stderr  # the key to fix, as for any config error


async def test_a_complete_config_passes_every_probe(
    run_cli: RunCli, aas_emulator: EmulatorHandle, mosquitto_broker: Mosquitto, tmp_path: Path
) -> None:
    mqtt = {"host": mosquitto_broker.host, "port": mosquitto_broker.port}
    code, rows = await probe(run_cli, device(aas_emulator, tmp_path, mqtt=mqtt), tmp_path)
    assert code == 0, [row for row in rows.values() if row["status"] in ("fail", "warn")]
    for name in ("delivery", "mic", "aas-token", "aas-grpc", "aas-rest", "mqtt"):
        assert rows[name]["status"] == "ok", rows[name]


async def test_a_broker_that_refuses_fails_the_mqtt_probe(
    run_cli: RunCli, aas_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    mqtt = {"host": "127.0.0.1", "port": free_port()}  # nobody listens: connection refused
    code, rows = await probe(run_cli, device(aas_emulator, tmp_path, mqtt=mqtt), tmp_path)
    assert rows["mqtt"]["status"] == "fail", rows["mqtt"]
    assert "refused" in rows["mqtt"]["detail"].lower(), rows["mqtt"]
    assert code == 1


async def test_a_rest_url_that_is_not_the_service_fails_the_rest_probe(
    run_cli: RunCli, aas_emulator: EmulatorHandle, not_the_service: str, tmp_path: Path
) -> None:
    tree = device(aas_emulator, tmp_path)
    tree["aas"]["rest_url"] = not_the_service  # answers, but 404: a wrong base URL
    code, rows = await probe(run_cli, tree, tmp_path)
    assert rows["aas-token"]["status"] == "ok", rows["aas-token"]
    assert rows["aas-rest"]["status"] == "fail", rows["aas-rest"]
    assert "HTTP 404" in rows["aas-rest"]["detail"]
    assert code == 1


async def test_a_live_endpoint_that_is_not_the_service_fails_the_live_probe(
    run_cli: RunCli, aas_emulator: EmulatorHandle, not_the_service: str, tmp_path: Path
) -> None:
    tree = device(aas_emulator, tmp_path, uplink={"live_transport": "websocket"})
    tree["aas"]["ws_url"] = not_the_service.replace("http://", "ws://") + "/ambient"
    code, rows = await probe(run_cli, tree, tmp_path)
    assert "aas-websocket" in rows, rows
    assert rows["aas-websocket"]["status"] == "fail", rows["aas-websocket"]
    assert code == 1


async def test_a_token_url_that_is_not_the_service_fails_the_token_probe(
    run_cli: RunCli, aas_emulator: EmulatorHandle, not_the_service: str, tmp_path: Path
) -> None:
    tree = device(aas_emulator, tmp_path)
    tree["auth"]["token_url"] = not_the_service + "/oauth2/token"
    code, rows = await probe(run_cli, tree, tmp_path)
    assert rows["aas-token"]["status"] == "fail", rows["aas-token"]
    assert code == 1


async def test_a_wav_source_is_described_at_its_own_rate(run_cli: RunCli, tmp_path: Path) -> None:
    """A 22,050 Hz file plays at 22,050 Hz (then is resampled): `audio.rate` does not apply."""
    tree = device(None, tmp_path)
    tree["audio"]["wav_path"] = str(wav_at(tmp_path / "speech.wav", 22050))
    _, rows = await probe(run_cli, tree, tmp_path)
    assert "22050 Hz" in rows["mic"]["detail"], rows["mic"]
    assert rows["mic"]["status"] == "ok"
    assert "16000 Hz" not in rows["audio"]["detail"], rows["audio"]


async def test_a_wav_source_that_is_not_audio_fails_the_mic_probe(
    run_cli: RunCli, tmp_path: Path
) -> None:
    tree = device(None, tmp_path)
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not audio")
    tree["audio"]["wav_path"] = str(bogus)
    code, rows = await probe(run_cli, tree, tmp_path)
    assert rows["mic"]["status"] == "fail", rows["mic"]
    assert code == 1


async def test_a_corti_tenant_behind_a_wrong_url_fails_the_corti_probe(
    run_cli: RunCli, not_the_service: str, tmp_path: Path
) -> None:
    secret = tmp_path / "corti-secret"
    secret.write_text("s\n")
    corti = {
        "tenant": "clinic",
        "client_id": "dev",
        "client_secret_file": str(secret),
        "auth_url": not_the_service,
        "api_url": not_the_service,
    }
    tree = device(None, tmp_path, uplink={"service": "corti"}, corti=corti)
    code, rows = await probe(run_cli, tree, tmp_path)
    failed = {name: row for name, row in rows.items() if name.startswith("corti")}
    assert any(row["status"] == "fail" for row in failed.values()), rows
    assert code == 1


async def test_a_dice_service_behind_a_wrong_url_fails_the_generic_probe(
    run_cli: RunCli, not_the_service: str, tmp_path: Path
) -> None:
    password = tmp_path / "dice-password"
    password.write_text("p\n")
    dice = {
        "url": not_the_service.replace("http://", "ws://") + "/stream",
        "token_url": not_the_service + "/token",
        "username": "dev",
        "password_file": str(password),
    }
    tree = device(None, tmp_path, uplink={"service": "dice"}, dice=dice)
    code, rows = await probe(run_cli, tree, tmp_path)
    failed = {name: row for name, row in rows.items() if name.startswith("dice")}
    assert any(row["status"] == "fail" for row in failed.values()), rows
    assert code == 1
