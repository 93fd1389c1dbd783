"""Drain speed of the delivery engine: spooled audio to the emulator on loopback.

Spools one closed recording of 16 kHz mono PCM16 (one hour; --quick: five minutes) through the
real encrypted Spool, then times the real DeliveryEngine delivering it to the in-process
emulator until StartProcessing completed and the spool reclaimed the space, over gRPC
(a recording the service already knew, finished by resume in big messages) and over REST
(storeChunk of `uplink.rest_chunk_bytes` + finalizeUpload). The emulator runs in the same
process and event loop, so its CPU is counted against the device: a conservative figure.
Goal: >= 100x real time on loopback.

    python benchmarks/bench_drain.py [--seconds 600] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from devtools.emulators.aas.app import Emulator
from devtools.emulators.aas.settings import EmulatorSettings
from edge_recorder.config.model import Config
from edge_recorder.delivery.engine import DeliveryEngine
from edge_recorder.delivery.state import DeliveryState
from edge_recorder.spool import Spool

RATE = 16000
BYTES_PER_S = RATE * 2
CHUNK = BYTES_PER_S // 10  # 100 ms, as capture appends


def _config(emulator: Emulator, tmp: Path, name: str) -> Config:
    secret = tmp / "secret"
    secret.write_text(emulator.settings.client_secret)
    return Config.model_validate(
        {
            "spool": {
                "dir": str(tmp / f"spool-{name}"),
                "key_file": str(tmp / "spool.key"),
                "reserve_free_bytes": 0,
                "max_bytes": "4GiB",
            },
            "auth": {
                "token_url": emulator.token_url,
                "client_id": emulator.settings.client_id,
                "client_secret_file": str(secret),
            },
            "aas": {
                "grpc_target": emulator.grpc_target,
                "rest_url": emulator.http_url,
                "tls": False,
                "customer_id": str(uuid.uuid4()),
                "partner_id": str(uuid.uuid4()),
                "product_id": str(uuid.uuid4()),
                "external_user_id": "bench",
            },
        }
    )


def _spool_audio(spool: Spool, seconds: float) -> tuple[str, str, int, str]:
    """One closed recording of `seconds` of noise; returns (cid, rid, length, sha256)."""
    cid, rid = f"bench-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    writer = spool.begin_recording(cid, 1, rid, codec="pcm16", sample_rate=RATE)
    block = np.random.default_rng(7).integers(0, 256, CHUNK * 100, dtype=np.uint8).tobytes()
    digest, total = hashlib.sha256(), int(seconds * BYTES_PER_S)
    written = 0
    while written < total:
        for start in range(0, len(block), CHUNK):
            piece = block[start : start + min(CHUNK, total - written)]
            writer.append(piece)
            digest.update(piece)
            written += len(piece)
            if written >= total:
                break
    writer.close("stopped")
    spool.end_encounter(cid)
    return cid, rid, written, digest.hexdigest()


async def _drain(emulator: Emulator, tmp: Path, transport: str, seconds: float) -> dict[str, Any]:
    config = _config(emulator, tmp, transport)
    spool = Spool.open(config.spool, environ={})
    try:
        cid, rid, length, sha = _spool_audio(spool, seconds)
        if transport == "grpc":  # the service knew it live: the engine finishes it by resume
            DeliveryState(spool.dir).mark_live(rid)
        engine = DeliveryEngine(config, spool)
        wall, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(engine.run())
        engine.wake()
        while any(r.id == rid for r in spool.recordings()):
            if task.done():
                raise RuntimeError("delivery engine stopped")
            await asyncio.sleep(0.01)  # polling for completion in a benchmark harness
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.aclose()
    finally:
        spool.close()
    session = emulator.ctx.store.describe(emulator.ctx.store.sessions[cid])
    stored = session["recordings"][0]
    return {
        "transport": transport,
        "audio_s": round(length / BYTES_PER_S, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "x_realtime": round(length / BYTES_PER_S / wall, 1),
        "mb_per_s": round(length / wall / 1e6, 1),
        "bytes_equal": stored["bytes"] == length and stored["sha256"] == sha,
        "processing_started": bool(session["processingStarted"]),
    }


async def _measure(seconds: float) -> list[dict[str, Any]]:
    logging.getLogger("edge_recorder").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp_name:
        tmp = Path(tmp_name)
        emulator = Emulator(EmulatorSettings(data_dir=tmp / "emulator", grpc_port=0, http_port=0))
        await emulator.start()
        try:
            return [await _drain(emulator, tmp, t, seconds) for t in ("grpc", "rest")]
        finally:
            await emulator.stop()


def measure(seconds: float) -> list[dict[str, Any]]:
    return asyncio.run(_measure(seconds))


def run(quick: bool = False) -> dict[str, Any]:
    """The `benchmarks/run.py` table: drain speed per transport, with the goal."""
    seconds = 300.0 if quick else 3600.0
    results = measure(seconds)
    rows = [
        [r["transport"], r["audio_s"], r["wall_s"], r["cpu_s"], r["x_realtime"], r["mb_per_s"],
         r["bytes_equal"]]
        for r in results
    ]  # fmt: skip
    goals = [
        {
            "goal": f"drain >= 100x real time over {r['transport']} (loopback)",
            "value": r["x_realtime"],
            "met": r["x_realtime"] >= 100 and r["bytes_equal"],
        }
        for r in results
    ]
    return {
        "title": f"Delivery drain of {seconds:.0f} s of spooled PCM16 to the emulator (loopback)",
        "columns": ["transport", "audio s", "wall s", "CPU s", "x real time", "MB/s",
                    "bytes equal"],
        "rows": rows,
        "goals": goals,
        "detail": results,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r)


if __name__ == "__main__":
    main()
