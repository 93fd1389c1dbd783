"""Spool write cost while recording: write amplification and fsync rate.

Appends 100 ms chunks of 16 kHz PCM16 (3200 bytes) at real-time cadence on a simulated clock
(no waiting), through the real Spool on a real directory, counting every byte the spool writes
(segments and ledger) and every fsync, then reads the backlog back in message-sized reads.
Goal: write amplification <= 1.2.

    python benchmarks/bench_spool.py [--seconds 600] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from edge_recorder.config.model import SpoolConfig
from edge_recorder.spool import Spool
from edge_recorder.spool.fileops import CountingFileOps


class _SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _proc_write_bytes() -> int | None:
    """Bytes this process caused to be sent to the block layer (Linux), if available."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _drain_read(config: SpoolConfig, message_bytes: int) -> float:
    """Wall seconds to read the whole backlog back (fresh open) in message-sized reads."""
    start = time.perf_counter()
    with Spool.open(config, environ={}) as spool:
        for rec in spool.pending_recordings():
            offset = 0
            while piece := spool.read(rec.id, offset, message_bytes):
                offset += len(piece)
            assert offset == rec.length
    return time.perf_counter() - start


def measure(
    seconds: float = 600.0,
    *,
    chunk_ms: int = 100,
    rate: int = 16000,
    fsync_interval_s: float = 1.0,
    recording_s: float = 300.0,
    chunk_bytes: int | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Record `seconds` of audio (new recording every `recording_s`, as pause/resume would).
    `chunk_bytes` overrides the PCM16 chunk size (e.g. 400 for 32 kbit/s Opus per 100 ms)."""
    chunk = os.urandom(chunk_bytes or rate * 2 * chunk_ms // 1000)
    chunks = int(seconds * 1000 / chunk_ms)
    per_recording = max(1, int(recording_s * 1000 / chunk_ms))
    ops, clock = CountingFileOps(), _SimClock()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        config = SpoolConfig(
            dir=Path(tmp) / "spool",
            key_file=Path(tmp) / "spool.key",
            fsync_interval_s=fsync_interval_s,
            reserve_free_bytes=0,
        )
        proc_before = _proc_write_bytes()
        wall = time.perf_counter()
        with Spool.open(config, environ={}, ops=ops, monotonic=clock) as spool:
            writer = None
            for i in range(chunks):
                if i % per_recording == 0:
                    if writer is not None:
                        writer.close()
                    writer = spool.begin_recording(
                        "bench", i // per_recording + 1, str(uuid.uuid4()),
                        codec="pcm16", sample_rate=rate,
                    )  # fmt: skip
                clock.now += chunk_ms / 1000
                writer.append(chunk)
                spool.sync()  # the daemon's timer, as often as chunks arrive
            assert writer is not None
            writer.close()
        wall = time.perf_counter() - wall
        proc_after = _proc_write_bytes()
        read_wall = _drain_read(config, len(chunk))
    audio_bytes = chunks * len(chunk)
    audio_s = chunks * chunk_ms / 1000
    result: dict[str, Any] = {
        "benchmark": "spool_write",
        "audio_seconds": audio_s,
        "audio_bytes": audio_bytes,
        "chunk_bytes": len(chunk),
        "spool_bytes_written": ops.bytes_written,
        "write_amplification": round(ops.bytes_written / audio_bytes, 4),
        "write_amplification_goal": 1.2,
        "fsyncs": ops.fsyncs,
        "fsyncs_per_second": round(ops.fsyncs / audio_s, 3),
        "writes_per_second": round(ops.writes / audio_s, 3),
        "fsync_interval_s": fsync_interval_s,
        "append_speed_x_realtime": round(audio_s / wall, 1),
        "read_speed_x_realtime": round(audio_s / read_wall, 1),
    }
    if proc_before is not None and proc_after is not None:
        result["block_layer_bytes_per_audio_byte"] = round(
            (proc_after - proc_before) / audio_bytes, 4
        )
    result["ok"] = result["write_amplification"] <= 1.2
    return result


def run(quick: bool = False) -> dict[str, Any]:
    """The `benchmarks/run.py` table: PCM16 and Opus-sized chunks, with the goals."""
    seconds = 120.0 if quick else 600.0
    variants = [("PCM16 16 kHz, 3200 B / 100 ms", None), ("Opus 32 kbit/s, 400 B / 100 ms", 400)]
    rows, goals, detail = [], [], []
    for label, chunk_bytes in variants:
        r = measure(seconds, chunk_bytes=chunk_bytes)
        detail.append(r)
        rows.append(
            [label, r["write_amplification"], r.get("block_layer_bytes_per_audio_byte", "n/a"),
             r["fsyncs_per_second"], r["writes_per_second"], r["append_speed_x_realtime"],
             r["read_speed_x_realtime"]]
        )  # fmt: skip
        goals.append(
            {
                "goal": f"write amplification <= 1.2 ({label})",
                "value": r["write_amplification"],
                "met": r["write_amplification"] <= 1.2,
            }
        )
        goals.append(
            {
                "goal": f"fsyncs/s <= 1/fsync_interval_s ({label})",
                "value": r["fsyncs_per_second"],
                "met": r["fsyncs_per_second"] <= 1.0 / r["fsync_interval_s"] + 0.05,
            }
        )
    return {
        "title": f"Spool writes while recording ({seconds:.0f} s of audio, simulated clock)",
        "columns": ["chunks", "bytes written / audio byte", "block layer / audio byte",
                    "fsyncs/s", "writes/s", "append x real time", "read-back x real time"],
        "rows": rows,
        "goals": goals,
        "detail": detail,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")


if __name__ == "__main__":
    main()
