"""A damaged ledger, by failure class (as Vector's disk buffer tests group theirs): nested
JSON, huge numbers, wrong types, a truncated file, bytes that are not UTF-8. For each one the
spool opens at once, says why in one log line, keeps every recording, and the recordings
rebuilt from their segments and sealed headers are delivered to their own encounter under
their own number: through the in-memory service, and once through the AAS emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.spool import Spool, admin
from edge_recorder.spool.ledger import LEDGER_NAME
from edge_recorder.uplinks.fakes import FakeService, fake_uplinks
from tests.chaos.rig import Rig
from tests.support.emulator import MakeEmulator
from tests.support.helpers import async_poll_until
from tests.unit.spool.helpers import crash

Key = tuple[str, int]  # (correlation id, recording number)
OPEN_WITHIN_S = 2.0  # a damaged ledger used to cost a traceback per start, or ~30 s and 3.6 GB


def _config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "spool": {
                "dir": str(tmp_path / "spool"),
                "key_file": str(tmp_path / "spool.key"),
                "reserve_free_bytes": 0,
                "segment_bytes": 16 * 1024,  # several segments per recording
            },
            "uplink": {"retry_initial_s": 0.05, "retry_max_s": 0.2},
        }
    )


def _fill(config: Config) -> dict[Key, bytes]:
    """Two ended encounters and one recording a crash left open; what each one holds."""
    held: dict[Key, bytes] = {}
    spool = Spool.open(config.spool, environ={})
    for cid, seq, size in (("MRN-1001-A", 1, 40_000), ("MRN-1001-A", 2, 9_000), ("enc-B", 1, 5)):
        data = os.urandom(size)
        writer = spool.begin_recording(
            cid, seq, str(uuid.uuid4()), codec="pcm16", sample_rate=16000
        )
        for i in range(0, size, 3200):
            writer.append(data[i : i + 3200])
        writer.close()
        held[cid, seq] = data
    spool.end_encounter("MRN-1001-A")
    spool.end_encounter("enc-B")
    data = os.urandom(20_000)
    writer = spool.begin_recording("enc-C", 1, str(uuid.uuid4()), codec="opus", sample_rate=16000)
    writer.append(data)
    held["enc-C", 1] = data
    spool._save(full=True)  # a compaction: ledger.json holds it all (journal: test_journal.py)
    crash(spool)  # the process dies mid-recording, and then the ledger is found damaged
    return held


def _nested(raw: bytes) -> bytes:
    return b'{"version": 2, "recordings": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _huge_float(raw: bytes) -> bytes:
    return re.sub(rb'"length":\d+', b'"length":1e12', raw, count=1)


def _huge_int(raw: bytes) -> bytes:  # well-formed, but more audio than the segment files hold
    return re.sub(rb'"length":\d+', b'"length":1000000000000', raw, count=1)


def _beyond_u64(raw: bytes) -> bytes:
    return re.sub(rb'"confirmed":\d+', b'"confirmed":' + b"9" * 40, raw, count=1)


def _wrong_type(raw: bytes) -> bytes:
    return re.sub(rb'"seq":(\d+)', rb'"seq":"\1"', raw, count=1)


def _wrong_shape(raw: bytes) -> bytes:
    body = json.loads(raw)
    body["encounters"] = list(body["encounters"].values())
    return json.dumps(body).encode()


def _truncated(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _not_utf8(raw: bytes) -> bytes:
    return raw.replace(b'"pcm16"', b'"pcm\xff\xfe16"', 1)


def _empty(raw: bytes) -> bytes:
    return b""


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "nested-json": _nested,
    "huge-number-float": _huge_float,
    "huge-number-int": _huge_int,
    "huge-number-beyond-u64": _beyond_u64,
    "wrong-type": _wrong_type,
    "wrong-shape": _wrong_shape,
    "truncated": _truncated,
    "not-utf8": _not_utf8,
    "empty": _empty,
}


def _damage(config: Config, how: Callable[[bytes], bytes]) -> None:
    path = config.spool.dir / LEDGER_NAME
    damaged = how(path.read_bytes())
    assert damaged != path.read_bytes()
    path.write_bytes(damaged)


def _contents(spool: Spool) -> dict[Key, bytes]:
    return {(r.encounter, r.seq): spool.read(r.id, 0, r.length) for r in spool.recordings()}


async def _deliver(config: Config, spool: Spool) -> FakeService:
    service = FakeService()
    engine = DeliveryEngine(config, spool, uplinks=fake_uplinks(service))
    task = asyncio.create_task(engine.run())
    try:
        engine.wake()
        await async_poll_until(lambda: not spool.recordings(), what="every recording delivered")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.aclose()
    return service


@pytest.mark.parametrize("kind", list(DAMAGE))
async def test_a_damaged_ledger_is_set_aside_and_rebuilt_with_nothing_lost(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path)
    held = _fill(config)
    _damage(config, DAMAGE[kind])
    caplog.set_level(logging.INFO, logger="edge_recorder")
    started = time.perf_counter()
    spool = Spool.open(config.spool, environ={})
    opened_in = time.perf_counter() - started
    try:
        assert opened_in < OPEN_WITHIN_S, f"{kind}: open took {opened_in:.1f}s"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "ledger unusable" in errors[0].getMessage()
        reason = str(getattr(errors[0], "fields", {}).get("reason", ""))
        assert reason and "MRN" not in reason and "Traceback" not in caplog.text
        assert list(config.spool.dir.glob(f"{LEDGER_NAME}.corrupt-*"))  # kept for inspection
        assert _contents(spool) == held  # nothing recorded is lost
        assert {(r.encounter, r.seq, r.codec) for r in spool.recordings()} == {
            (cid, seq, "opus" if cid == "enc-C" else "pcm16") for cid, seq in held
        }
        assert spool.backlog().quarantined == 0
        service = await _deliver(config, spool)
        for cid in ("MRN-1001-A", "enc-B", "enc-C"):
            assert service.held(cid) == {s: d for (c, s), d in held.items() if c == cid}
        assert set(service.processing) == {"MRN-1001-A", "enc-B", "enc-C"}
        assert "orphaned-segments" not in service.sessions
    finally:
        spool.close()
    with Spool.open(config.spool, environ={}) as again:  # and the rebuilt ledger is sound
        assert again.recordings() == []


def test_orphans_without_a_header_stay_quarantined_through_retry_all(tmp_path: Path) -> None:
    config = _config(tmp_path)
    held = _fill(config)
    for header in (config.spool.dir / "headers").iterdir():  # segments of an older version
        header.unlink()
    _damage(config, _truncated)
    with Spool.open(config.spool, environ={}) as spool:
        recs = spool.recordings()
        assert sorted(spool.read(r.id, 0, r.length) for r in recs) == sorted(held.values())
        assert all(r.quarantine is not None and r.seq == 0 for r in recs)  # kept, not sent
        assert spool.pending_recordings() == []
    outcome, changed = admin.retry(config.spool.dir, None)  # `spool retry --all`, daemon down
    assert outcome == "applied" and changed == []
    with Spool.open(config.spool, environ={}) as spool:
        assert spool.pending_recordings() == []  # never sent as "recording 0" of a placeholder
        assert spool.backlog().quarantined == len(held)


async def test_a_rebuilt_ledger_delivers_to_the_aas_emulator_with_the_right_recording_ids(
    make_aas_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_aas_emulator()
    rig = await Rig.create(emu, tmp_path / "rig")
    try:
        recs = [rig.begin("MRN-2002-B"), rig.begin("MRN-2002-B"), rig.begin("enc-D")]
        for rec in recs:
            rec.write(3200 * 5)
            rec.close()
        rig.end("MRN-2002-B")
        rig.end("enc-D")
        rig.spool.close()
        _damage(rig.config, _truncated)
        rig.spool = Spool.open(rig.config.spool, environ={})
        await rig.start_engine()
        rig.wake()
        await rig.wait_processed()
        for rec in recs:
            assert await rig.server_bytes(rec) == bytes(rec.data)
        session = await emu.session("MRN-2002-B")
        assert len(session["recordings"]) == 2 and session["processingStarted"]
        assert "orphaned-segments" not in {s.get("correlationId") for s in await emu.sessions()}
    finally:
        await rig.close()
